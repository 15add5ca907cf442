"""SIGTERM to a real `bedel serve`: readiness fails at once, accepted questions are answered and stored."""

import asyncio
import signal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from bedel import migrate
from bedel.db import create_engine
from tests.ops.conftest import FakeLLM, serve_env, start_serve


class TestGracefulShutdown:
    async def test_sigterm_drains_then_finishes_in_flight_requests(self, tmp_path: Path, fake_llm: FakeLLM) -> None:
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'bedel.db'}"
        await asyncio.to_thread(migrate.upgrade, database_url)
        served = await start_serve(serve_env(database_url, fake_llm.url, BEDEL_SHUTDOWN_DRAIN_S="1.5"), tmp_path)
        try:
            async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
                in_flight = asyncio.create_task(client.post("/chat", json={"phone": "+34612345678", "question": "uno"}))
                await asyncio.sleep(0.3)
                served.process.send_signal(signal.SIGTERM)
                ready = await client.get("/readyz")
                for _ in range(50):  # the signal reaches the server's main thread within moments
                    if ready.status_code == 503:
                        break
                    await asyncio.sleep(0.02)
                    ready = await client.get("/readyz")
                alive = await client.get("/healthz")
                # The load balancer has not noticed yet: what it still sends is answered.
                late = await client.post("/chat", json={"phone": "+34612345679", "question": "dos"})
                answered = await in_flight
                await asyncio.sleep(1.5)
                with pytest.raises(httpx.ConnectError):
                    await client.get("/healthz")
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
                await asyncio.sleep(0.3)
                served.process.send_signal(signal.SIGTERM)
                refused = None
                for _ in range(50):
                    try:
                        await client.get("/healthz")
                    except httpx.ConnectError as exc:
                        refused = exc
                        break
                    await asyncio.sleep(0.02)
                answered = await in_flight
            exit_code = await asyncio.to_thread(served.process.wait, 40)
        finally:
            served.stop()

        assert refused is not None
        assert (answered.status_code, answered.json()["answer"]) == (200, "ok: uno")
        assert exit_code == -signal.SIGTERM
