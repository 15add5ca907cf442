"""`bedel keys create|list|revoke` in process through typer, on SQLite and PostgreSQL."""

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from bedel import commands
from bedel.cli import app
from bedel.config import Settings


def keys(*args: str, env: dict[str, str]) -> Result:
    return CliRunner().invoke(app, ["keys", *args], env=env)


@pytest.fixture
def env(clean_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    return {"BEDEL_DATABASE_URL": clean_database}


class TestKeysCommand:
    async def test_a_created_key_is_shown_once_and_works(
        self, env: dict[str, str], make_client: Callable[..., Any], settings: Settings
    ) -> None:
        # The command runs its own event loop: off this test's loop.
        created = await asyncio.to_thread(keys, "create", "--role", "client", "--name", "sitio web", env=env)
        assert created.exit_code == 0, created.output
        secret = created.stdout.splitlines()[-1]
        listed = await asyncio.to_thread(keys, "list", env=env)
        assert listed.stdout == "sitio web  client  active   last used never\n"
        assert secret not in listed.output
        async with make_client(settings) as client:
            chat = {"phone": "+52155667788", "question": "Hola"}
            response = await client.post("/chat", json=chat, headers={"Authorization": f"Bearer {secret}"})
        assert response.status_code == 200
        used = await asyncio.to_thread(keys, "list", env=env)
        assert used.stdout.startswith("sitio web  client  active   last used 20")

    def test_revoking_marks_the_key_revoked(self, env: dict[str, str]) -> None:
        keys("create", "--role", "staff", "--name", "mesa", env=env)
        revoked = keys("revoke", "mesa", env=env)
        assert revoked.exit_code == 0, revoked.output
        assert keys("list", env=env).stdout == "mesa  staff   revoked  last used never\n"

    def test_a_taken_name_exits_8_and_an_unknown_one_7(self, env: dict[str, str]) -> None:
        keys("create", "--role", "staff", "--name", "mesa", env=env)
        again = keys("create", "--role", "client", "--name", "mesa", env=env)
        unknown = keys("revoke", "nadie", env=env)
        assert (again.exit_code, unknown.exit_code) == (commands.EXIT_EXISTS, commands.EXIT_NOT_FOUND)
        assert again.stderr == "error: a key is already named 'mesa'; choose another name\n"

    def test_an_unknown_role_is_a_usage_error(self, env: dict[str, str]) -> None:
        assert keys("create", "--role", "admin", "--name", "x", env=env).exit_code == 2
