import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bedel import migrate
from bedel.config import Settings
from tests.test_cli import stamp_future_revision


class TestHealth:
    async def test_healthz_answers_while_alive(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_readyz_is_ready_on_a_migrated_database(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/readyz")
        assert response.status_code == 200
        assert response.json()["status"] == "ready"

    async def test_readyz_fails_while_migrations_are_pending(
        self, make_client: Callable[[Settings], Any], tmp_path: Path
    ) -> None:
        settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
        async with make_client(settings) as client:
            ready = await client.get("/readyz")
            alive = await client.get("/healthz")
        assert ready.status_code == 503
        assert "bedel db upgrade" in ready.json()["reason"]
        assert alive.status_code == 200

    async def test_readyz_stays_ready_on_a_newer_schema_during_a_rollout(
        self, make_client: Callable[[Settings], Any], tmp_path: Path
    ) -> None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'bedel.db'}"
        await asyncio.to_thread(migrate.upgrade, url)
        stamp_future_revision(url)
        settings = Settings(_env_file=None, database_url=url)
        async with make_client(settings) as client:
            ready = await client.get("/readyz")
        assert ready.status_code == 200

    async def test_readyz_fails_while_the_database_is_unreachable(self, make_client: Callable[[Settings], Any]) -> None:
        settings = Settings(_env_file=None, database_url="postgresql+asyncpg://postgres@127.0.0.1:1/none")
        async with make_client(settings) as client:
            ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "unreachable" in ready.json()["reason"]

    async def test_every_response_carries_a_request_id(self, client: httpx.AsyncClient) -> None:
        given = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        made = await client.get("/healthz")
        assert given.headers["x-request-id"] == "abc-123"
        assert len(made.headers["x-request-id"]) == 32
