"""SIGTERM to a real `bedel serve`: readiness fails at once, accepted questions are answered and stored."""

import asyncio
import signal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from bedel import migrate
from bedel.db import create_engine
from tests.ops.processes import serve_env, start_serve
from tests.ops.upstreams import FakeLLM
from tests.polling import eventually

pytestmark = pytest.mark.slow


async def refuses_connections(client: httpx.AsyncClient) -> bool:
    try:
        await client.get("/healthz")
    except httpx.ConnectError:
        return True
    return False


class TestGracefulShutdown:
    async def test_sigterm_drains_then_finishes_in_flight_requests(self, tmp_path: Path, fake_llm: FakeLLM) -> None:
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'bedel.db'}"
        await asyncio.to_thread(migrate.upgrade, database_url)
        served = await start_serve(serve_env(database_url, fake_llm.url, BEDEL_SHUTDOWN_DRAIN_S="1.5"), tmp_path)
        try:
            async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
                in_flight = asyncio.create_task(client.post("/chat", json={"phone": "+34612345678", "question": "uno"}))
                await eventually(lambda: fake_llm.waiting["sk-test"])
                served.process.send_signal(signal.SIGTERM)
                readiness: list[httpx.Response] = []

                async def not_ready() -> bool:
                    readiness.append(await client.get("/readyz"))
                    return readiness[-1].status_code == 503

                # The signal reaches the server's main thread within moments.
                await eventually(not_ready, within_s=2)
                ready = readiness[-1]
                alive = await client.get("/healthz")
                # The load balancer has not noticed yet: what it still sends is answered.
                late = await client.post("/chat", json={"phone": "+34612345679", "question": "dos"})
                answered = await in_flight
                # Once the drain is over, the server stops.
                await eventually(lambda: refuses_connections(client))
            exit_code = await asyncio.to_thread(served.process.wait, 40)
        finally:
            stderr = served.stop()

        assert ready.status_code == 503
        assert ready.json()["reason"] == "shutting down"
        assert alive.status_code == 200
        assert (answered.status_code, answered.json()["answer"]) == (200, "ok: uno")
        assert (late.status_code, late.json()["answer"]) == (200, "ok: dos")
        # uvicorn re-raises the signal once shut down, so the exit status tells what stopped it.
        assert exit_code == -signal.SIGTERM
        assert b'"event": "stopped"' in stderr
        assert b"listening on 127.0.0.1 only" in stderr
        engine = create_engine(database_url)
        async with engine.connect() as connection:
            stored = (await connection.execute(text("SELECT role, content FROM messages ORDER BY created_at"))).all()
        await engine.dispose()
        assert sorted(map(tuple, stored)) == [
            ("assistant", "ok: dos"),
            ("assistant", "ok: uno"),
            ("user", "dos"),
            ("user", "uno"),
        ]

    async def test_without_a_drain_sigterm_stops_accepting_at_once_and_still_answers(
        self, tmp_path: Path, fake_llm: FakeLLM
    ) -> None:
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'bedel.db'}"
        await asyncio.to_thread(migrate.upgrade, database_url)
        served = await start_serve(serve_env(database_url, fake_llm.url), tmp_path)
        try:
            async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
                in_flight = asyncio.create_task(client.post("/chat", json={"phone": "+34612345678", "question": "uno"}))
                await eventually(lambda: fake_llm.waiting["sk-test"])
                served.process.send_signal(signal.SIGTERM)
                await eventually(lambda: refuses_connections(client), within_s=2)
                answered = await in_flight
            exit_code = await asyncio.to_thread(served.process.wait, 40)
        finally:
            served.stop()

        assert (answered.status_code, answered.json()["answer"]) == (200, "ok: uno")
        assert exit_code == -signal.SIGTERM
