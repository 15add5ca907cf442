"""Start-up errors: one JSON log line naming the setting and the fix, and a distinct exit code."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from bedel import migrate
from tests.backends import POSTGRES_URL
from tests.ports import free_port

# Each test runs `bedel` in a process of its own.
pytestmark = pytest.mark.slow


def run_bedel(*args: str, env: dict[str, str], cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BEDEL_", "OPENAI_"))}
    return subprocess.run(
        [sys.executable, "-m", "bedel.cli", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )


@pytest.fixture
def migrated_sqlite(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bedel.db'}"
    migrate.upgrade(url)
    return url


class TestStartupErrors:
    @pytest.mark.parametrize(
        ("env", "setting", "exit_code"),
        [
            ({"BEDEL_LLM_PROVIDER": "gpt"}, "BEDEL_LLM_PROVIDER", 2),
            ({"BEDEL_PORT": "http"}, "BEDEL_PORT", 2),
            ({"BEDEL_ENV": "production", "BEDEL_WORKERS": "1"}, "BEDEL_API_KEYS", 2),
            (
                {"BEDEL_INSTRUCTIONS_FILE": "/nonexistent/instructions.j2"},
                "BEDEL_INSTRUCTIONS_FILE",
                2,
            ),
            ({"BEDEL_RATE_LIMIT_PER_PHONE": "lots"}, "BEDEL_RATE_LIMIT_PER_PHONE", 2),
            (
                {"BEDEL_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:1/none"},
                "BEDEL_DATABASE_URL",
                3,
            ),
            ({"BEDEL_DATABASE_URL": "postgresql://bedel:s3cret@db/bedel"}, "BEDEL_DATABASE_URL", 2),
            ({"BEDEL_DATABASE_URL": "sqlite:///bedel.db"}, "BEDEL_DATABASE_URL", 2),
            ({"BEDEL_DATABASE_URL": "not a url"}, "BEDEL_DATABASE_URL", 2),
            ({"BEDEL_LLM_PROVIDER": "openai_compatible"}, "BEDEL_LLM_API_KEY", 2),
            (
                {
                    "BEDEL_TWILIO_ACCOUNT_SID": "AC1",
                    "BEDEL_TWILIO_AUTH_TOKEN": "t0ken",
                    "BEDEL_TWILIO_FROM": "whatsapp:+1",
                },
                "BEDEL_PUBLIC_URL",
                2,
            ),
            ({"BEDEL_LLM_BASE_URL": "localhost:11434/v1"}, "BEDEL_LLM_BASE_URL", 2),
            ({"BEDEL_LLM_BASE_URL": "http://localhost:port/v1"}, "BEDEL_LLM_BASE_URL", 2),
            ({"BEDEL_METRICS_PORT": "0"}, "BEDEL_METRICS_PORT", 2),
            ({"BEDEL_RATE_LIMIT_STORAGE_URL": "memcache://cache"}, "BEDEL_RATE_LIMIT_STORAGE_URL", 2),
            ({"BEDEL_RATE_LIMIT_STORAGE_URL": "redis://127.0.0.1:1"}, "BEDEL_RATE_LIMIT_STORAGE_URL", 6),
            ({"BEDEL_WORKERS": "2"}, "BEDEL_RATE_LIMIT_STORAGE_URL", 2),
            ({"BEDEL_WORKERS": "0"}, "BEDEL_WORKERS", 2),
            pytest.param(
                {"BEDEL_DATABASE_URL": make_url(POSTGRES_URL).set(database="bedel_no_such_db").render_as_string(False)},
                "BEDEL_DATABASE_URL",
                3,
                marks=pytest.mark.postgres,
            ),
        ],
    )
    def test_serve_stops_with_one_line_naming_the_setting(
        self,
        tmp_path: Path,
        migrated_sqlite: str,
        env: dict[str, str],
        setting: str,
        exit_code: int,
    ) -> None:
        result = run_bedel("serve", env={"BEDEL_DATABASE_URL": migrated_sqlite, **env}, cwd=tmp_path)

        assert result.returncode == exit_code
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        line = json.loads(lines[0])
        assert line["level"] == "error"
        assert setting in line["message"]
        assert "Traceback" not in result.stderr
        assert "s3cret" not in result.stderr

    def test_serve_with_workers_refuses_limits_counted_in_memory(self, tmp_path: Path, migrated_sqlite: str) -> None:
        result = run_bedel("serve", "--workers", "2", env={"BEDEL_DATABASE_URL": migrated_sqlite}, cwd=tmp_path)

        assert result.returncode == 2
        [line] = result.stderr.strip().splitlines()
        assert json.loads(line)["message"].startswith("BEDEL_RATE_LIMIT_STORAGE_URL: memory:// ")

    def test_worker_checks_settings_like_serve(self, tmp_path: Path, migrated_sqlite: str) -> None:
        result = run_bedel("worker", env={"BEDEL_DATABASE_URL": migrated_sqlite, "BEDEL_PORT": "http"}, cwd=tmp_path)

        assert result.returncode == 2
        assert "BEDEL_PORT" in json.loads(result.stderr.strip())["message"]

    def test_serve_names_a_template_that_does_not_compile(self, tmp_path: Path, migrated_sqlite: str) -> None:
        (tmp_path / "instructions.md.j2").write_text("Eres {{ institution_name", encoding="utf-8")

        result = run_bedel(
            "serve",
            env={"BEDEL_DATABASE_URL": migrated_sqlite, "BEDEL_INSTRUCTIONS_FILE": "instructions.md.j2"},
            cwd=tmp_path,
        )

        assert result.returncode == 2
        assert "BEDEL_INSTRUCTIONS_FILE" in json.loads(result.stderr.strip())["message"]

    @pytest.mark.parametrize("command", ["serve", "worker"])
    @pytest.mark.parametrize("setting", ["BEDEL_PORT", "BEDEL_METRICS_PORT"])
    def test_serve_and_worker_name_a_port_already_taken(
        self, tmp_path: Path, migrated_sqlite: str, setting: str, command: str
    ) -> None:
        other = "BEDEL_METRICS_PORT" if setting == "BEDEL_PORT" else "BEDEL_PORT"
        with socket.create_server(("127.0.0.1", 0)) as taken:
            port = str(taken.getsockname()[1])
            # The other port must not be the one in the way (another server may hold the defaults).
            env = {"BEDEL_DATABASE_URL": migrated_sqlite, setting: port, other: str(free_port())}
            result = run_bedel(command, env=env, cwd=tmp_path)

        assert result.returncode == 5
        error = json.loads(result.stderr.strip())
        assert error["event"] == "port_unavailable"
        assert setting in error["message"] and port in error["message"]

    def test_serve_refuses_a_database_with_pending_migrations(self, tmp_path: Path) -> None:
        result = run_bedel(
            "serve",
            env={"BEDEL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"},
            cwd=tmp_path,
        )

        assert result.returncode == 4
        assert "bedel db upgrade" in json.loads(result.stderr.strip())["message"]


class TestDatabaseWait:
    def test_wait_returns_once_the_migration_lands(self, tmp_path: Path) -> None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'bedel.db'}"
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("BEDEL_", "OPENAI_"))}
        waiting = subprocess.Popen(
            [sys.executable, "-m", "bedel.cli", "db", "wait", "--timeout", "60"],
            env={**clean, "BEDEL_DATABASE_URL": url},
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            migrate.upgrade(url)
            _, stderr = waiting.communicate(timeout=60)
        finally:
            waiting.kill()

        assert waiting.returncode == 0
        assert json.loads(stderr.strip())["event"] == "database_ready"

    def test_wait_gives_up_with_the_pending_line(self, tmp_path: Path) -> None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'bedel.db'}"
        result = run_bedel("db", "wait", "--timeout", "0", env={"BEDEL_DATABASE_URL": url}, cwd=tmp_path)

        assert result.returncode == 4
        assert "bedel db upgrade" in json.loads(result.stderr.strip())["message"]

    def test_a_newer_schema_does_not_stop_serve_mid_rollout(self, tmp_path: Path, migrated_sqlite: str) -> None:
        stamp_future_revision(migrated_sqlite)

        result = run_bedel("db", "wait", "--timeout", "0", env={"BEDEL_DATABASE_URL": migrated_sqlite}, cwd=tmp_path)

        assert result.returncode == 0, result.stderr


def stamp_future_revision(url: str) -> None:
    """What the next version's migration leaves behind: a revision this code does not know."""
    engine = create_engine(url.replace("+aiosqlite", ""))
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_next_version'"))
    engine.dispose()


class TestTerminalChat:
    def test_chat_holds_a_conversation_through_the_service(self, tmp_path: Path, migrated_sqlite: str) -> None:
        students = tmp_path / "alumnos.csv"
        students.write_text("telefono,nombre,adeudo\n+52 55 1234 5678,Lucía Pérez,4500\n", encoding="utf-8")
        env = {"BEDEL_DATABASE_URL": migrated_sqlite}
        assert run_bedel("students", "import", str(students), env=env, cwd=tmp_path).returncode == 0

        result = run_bedel("chat", "--phone", "5215512345678", env=env, cwd=tmp_path, stdin="hola\n¿cuánto debo?\n")

        assert result.returncode == 0, result.stderr
        assert "Lucía" in result.stdout
        assert "4,500" in result.stdout
