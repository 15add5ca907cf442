"""SIGTERM to a real `bedel serve`: in-flight answers finish and are stored, then the process exits."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import text

from bedel import migrate
from bedel.db import create_engine
from tests.llm_fakes import completion_body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def slow_llm() -> AsyncIterator[str]:
    """An OpenAI-compatible upstream on loopback that takes a second to answer."""
    upstream = FastAPI()

    @upstream.post("/v1/chat/completions")
    async def answer() -> dict[str, object]:
        await asyncio.sleep(1.0)
        return completion_body("Respuesta lenta pero segura.")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(upstream, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    await task


class TestGracefulShutdown:
    async def test_sigterm_finishes_in_flight_requests(self, tmp_path: Path, slow_llm: str) -> None:
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'bedel.db'}"
        await asyncio.to_thread(migrate.upgrade, database_url)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BEDEL_", "OPENAI_"))}
        env |= {
            "BEDEL_DATABASE_URL": database_url,
            "BEDEL_LLM_PROVIDER": "openai_compatible",
            "BEDEL_LLM_BASE_URL": slow_llm,
            "BEDEL_LLM_API_KEY": "sk-test",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "bedel.cli", "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)

                question = {"phone": "+34612345678", "question": "¿sigues ahí?"}
                in_flight = asyncio.create_task(client.post("/chat", json=question))
                await asyncio.sleep(0.4)
                process.send_signal(signal.SIGTERM)
                response = await in_flight

            exit_code = await asyncio.to_thread(process.wait, 20)
        finally:
            process.kill()
            _, stderr = process.communicate()

        assert response.status_code == 200
        assert response.json()["answer"] == "Respuesta lenta pero segura."
        # uvicorn re-raises the signal once shut down, so the exit status tells what stopped it.
        assert exit_code == -signal.SIGTERM
        assert b'"event": "stopped"' in stderr
        assert b"listening on 127.0.0.1 only" in stderr
        engine = create_engine(database_url)
        async with engine.connect() as connection:
            roles = (await connection.execute(text("SELECT role FROM messages ORDER BY seq"))).scalars().all()
        await engine.dispose()
        assert roles == ["user", "assistant"]
