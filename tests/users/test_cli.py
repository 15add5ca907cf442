"""`bedel users ...` in process through typer, on SQLite and PostgreSQL."""

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from bedel import commands, migrate
from bedel.cli import app

PASSWORD = "clave-secreta-1"


def users(*args: str, env: dict[str, str], password: str | None = None) -> Result:
    return CliRunner().invoke(app, ["users", *args], env=env, input=None if password is None else password + "\n")


@pytest.fixture
def env(clean_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    return {"BEDEL_DATABASE_URL": clean_database}


class TestAdd:
    def test_adds_an_account_with_the_password_from_stdin(self, env: dict[str, str]) -> None:
        result = users("add", "Ana@Example.edu", "--role", "admin", env=env, password=PASSWORD)
        assert result.exit_code == 0, result.output
        assert result.stdout == "added admin ana@example.edu\n"
        listed = users("list", env=env)
        assert listed.stdout.startswith("ana@example.edu  admin  active    last sign-in never")

    def test_the_password_is_never_printed(self, env: dict[str, str]) -> None:
        added = users("add", "ana@example.edu", "--role", "agent", env=env, password=PASSWORD)
        again = users("add", "ana@example.edu", "--role", "agent", env=env, password=PASSWORD)
        assert PASSWORD not in added.output + again.output

    def test_a_weak_password_is_refused_with_1(self, env: dict[str, str]) -> None:
        result = users("add", "ana@example.edu", "--role", "agent", env=env, password="corta")
        assert result.exit_code == commands.EXIT_INPUT == 1
        assert result.stderr == "error: a password needs at least 10 characters\n"
        assert users("list", env=env).stdout == ""

    def test_not_an_email_is_refused_with_1(self, env: dict[str, str]) -> None:
        result = users("add", "ana", "--role", "agent", env=env, password=PASSWORD)
        assert result.exit_code == 1
        assert "not an email address" in result.stderr

    def test_an_email_taken_in_any_case_exits_8(self, env: dict[str, str]) -> None:
        users("add", "ana@example.edu", "--role", "agent", env=env, password=PASSWORD)
        result = users("add", "ANA@example.edu", "--role", "admin", env=env, password=PASSWORD)
        assert result.exit_code == commands.EXIT_EXISTS == 8
        assert result.stderr == "error: ana@example.edu already has an account\n"

    def test_an_unknown_role_is_a_usage_error(self, env: dict[str, str]) -> None:
        result = users("add", "ana@example.edu", "--role", "boss", env=env, password=PASSWORD)
        assert result.exit_code == 2


class TestDisableEnableReset:
    def test_disable_then_enable(self, env: dict[str, str]) -> None:
        users("add", "boss@example.edu", "--role", "admin", env=env, password=PASSWORD)
        users("add", "ana@example.edu", "--role", "agent", env=env, password=PASSWORD)
        assert users("disable", "ANA@example.edu", env=env).stdout == "disabled ana@example.edu\n"
        assert "ana@example.edu  agent  disabled" in users("list", env=env).stdout
        assert users("enable", "ana@example.edu", env=env).exit_code == 0
        assert "ana@example.edu  agent  active" in users("list", env=env).stdout

    def test_the_last_admin_is_not_disabled(self, env: dict[str, str]) -> None:
        users("add", "boss@example.edu", "--role", "admin", env=env, password=PASSWORD)
        result = users("disable", "boss@example.edu", env=env)
        assert result.exit_code == 1
        assert "last active admin" in result.stderr

    def test_an_unknown_email_exits_7(self, env: dict[str, str]) -> None:
        for command in (["disable"], ["enable"], ["reset-password"]):
            result = users(*command, "nadie@example.edu", env=env, password=PASSWORD)
            assert result.exit_code == commands.EXIT_NOT_FOUND == 7
            assert result.stderr == "error: no account has the email nadie@example.edu\n"

    def test_reset_password_reads_the_new_one(self, env: dict[str, str]) -> None:
        users("add", "ana@example.edu", "--role", "agent", env=env, password=PASSWORD)
        result = users("reset-password", "ana@example.edu", env=env, password="otra-clave-secreta")
        assert result.exit_code == 0
        assert result.stdout == "password reset for ana@example.edu; its sessions have ended\n"
        assert "otra-clave-secreta" not in result.output


class TestSetUp:
    def test_a_database_without_the_accounts_migration_exits_4(self, tmp_path: Path) -> None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        migrate.upgrade(url, "0007")
        result = users("list", env={"BEDEL_DATABASE_URL": url})
        assert result.exit_code == commands.EXIT_MIGRATIONS == 4
        assert "bedel db upgrade" in result.stderr

    def test_an_unreachable_database_exits_3(self, tmp_path: Path) -> None:
        url = "postgresql+asyncpg://postgres@127.0.0.1:1/nothing"
        assert users("list", env={"BEDEL_DATABASE_URL": url}).exit_code == 3

    def test_a_bad_setting_exits_2(self) -> None:
        assert users("list", env={"BEDEL_DATABASE_URL": "sqlite:///sync.db"}).exit_code == 2
