"""Real `bedel serve` processes and a real OpenAI-compatible upstream on loopback."""

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from tests.llm_fakes import completion_body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class FakeLLM:
    """Answers "ok: <question>" after `delay_s`, like a slow model would."""

    url: str
    delay_s: float = 1.0


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLLM]:
    upstream = FastAPI()
    port = free_port()
    fake = FakeLLM(url=f"http://127.0.0.1:{port}/v1")

    @upstream.post("/v1/chat/completions")
    async def answer(request: Request) -> dict[str, object]:
        body = await request.json()
        await asyncio.sleep(fake.delay_s)
        return completion_body("ok: " + body["messages"][-1]["content"])

    server = uvicorn.Server(uvicorn.Config(upstream, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield fake
    server.should_exit = True
    await task


@dataclass
class Served:
    """One `bedel serve` process; `stderr` holds its log lines once it has stopped."""

    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    stderr: bytes = field(default=b"")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> bytes:
        self.process.kill()
        _, self.stderr = self.process.communicate()
        return self.stderr


def serve_env(database_url: str, llm_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BEDEL_", "OPENAI_", "PROMETHEUS_"))}
    return env | {
        "BEDEL_DATABASE_URL": database_url,
        "BEDEL_LLM_PROVIDER": "openai_compatible",
        "BEDEL_LLM_BASE_URL": llm_url,
        "BEDEL_LLM_API_KEY": "sk-test",
        "BEDEL_RATE_LIMIT_PER_PHONE": "10000/minute",
        **extra,
    }


async def start_serve(env: dict[str, str], cwd: Path) -> Served:
    """Start `bedel serve` and wait until /readyz answers 200."""
    served = Served(
        subprocess.Popen(
            [sys.executable, "-m", "bedel.cli", "serve"],
            env=env | {"BEDEL_PORT": str(port := free_port()), "BEDEL_METRICS_PORT": str(metrics := free_port())},
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        ),
        port=port,
        metrics_port=metrics,
    )
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=served.url, timeout=2) as client:
        while time.monotonic() < deadline and served.process.poll() is None:
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return served
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"bedel serve did not become ready: {served.stop().decode()}")
