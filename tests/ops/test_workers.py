"""`bedel serve --workers 2`: two processes on one port, one service to clients, Prometheus and signals."""

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from bedel import migrate
from bedel.db import create_engine
from tests.ops.processes import Served, samples, serve_env, start_serve
from tests.ops.upstreams import FakeLLM
from tests.polling import eventually
from tests.ports import free_port

# The processes share their rate limits through Redis: memory:// is refused with more than one.
pytestmark = [pytest.mark.slow, pytest.mark.redis]

SHARED_LIMITS = {"BEDEL_RATE_LIMIT_STORAGE_URL": "redis://127.0.0.1:6379/15"}


def worker_pids(served: Served) -> list[int]:
    """The spawned server processes (not multiprocessing's resource tracker, also a child)."""
    children = Path(f"/proc/{served.process.pid}/task/{served.process.pid}/children").read_text().split()
    return [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def running(pid: int) -> bool:
    """Whether the process exists and has not exited (an exited orphan may wait as a zombie for init to reap it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def events(stderr: bytes, name: str) -> list[dict[str, object]]:
    return [
        event
        for line in stderr.decode().splitlines()
        if line.startswith("{") and (event := json.loads(line))["event"] == name
    ]


async def stored_messages(database_url: str) -> list[tuple[str, str]]:
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT role, content FROM messages"))).all()
    await engine.dispose()
    return sorted((row[0], row[1]) for row in rows)


@pytest.fixture
async def database_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bedel.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    return url


class TestSharedPort:
    async def test_concurrent_conversations_on_sqlite_are_answered_stored_and_counted_once(
        self, tmp_path: Path, fake_llm: FakeLLM, database_url: str
    ) -> None:
        fake_llm.delay_s = 0.02
        shared = tmp_path / "prometheus"
        shared.mkdir()
        env = serve_env(database_url, fake_llm.url, PROMETHEUS_MULTIPROC_DIR=str(shared), **SHARED_LIMITS)
        served = await start_serve(env, tmp_path, "--workers", "2")
        try:
            pids = worker_pids(served)
            async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:

                async def conversation(n: int) -> list[httpx.Response]:
                    phone = f"+346123{n:05d}"
                    return [await client.post("/chat", json={"phone": phone, "question": f"{n}-{q}"}) for q in range(3)]

                # Both processes write to the one SQLite file at the same time.
                answered = await asyncio.gather(*(conversation(n) for n in range(30)))
                scraped = (await client.get(f"http://127.0.0.1:{served.metrics_port}/metrics")).text
        finally:
            served.stop()

        assert len(pids) == 2
        assert all(r.status_code == 200 for responses in answered for r in responses)
        assert [r.json()["answer"] for r in answered[7]] == ["ok: 7-0", "ok: 7-1", "ok: 7-2"]
        chat = samples(scraped, "bedel_http_requests_total")
        assert chat[(("method", "POST"), ("route", "/chat"), ("status", "200"))] == 90
        assert await stored_messages(database_url) == sorted(
            [("user", f"{n}-{q}") for n in range(30) for q in range(3)]
            + [("assistant", f"ok: {n}-{q}") for n in range(30) for q in range(3)]
        )


class TestStartAndStopTogether:
    async def test_sigterm_drains_every_worker_then_the_service_exits(
        self, tmp_path: Path, fake_llm: FakeLLM, database_url: str
    ) -> None:
        env = serve_env(database_url, fake_llm.url, BEDEL_SHUTDOWN_DRAIN_S="1.5", **SHARED_LIMITS)
        served = await start_serve(env, tmp_path, "--workers", "2")
        try:
            async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
                in_flight = [
                    asyncio.create_task(client.post("/chat", json={"phone": f"+3461234567{n}", "question": f"q{n}"}))
                    for n in range(4)
                ]
                await eventually(lambda: fake_llm.waiting["sk-test"] == 4)
                served.process.send_signal(signal.SIGTERM)
                readiness: list[int] = []

                async def not_ready() -> bool:
                    readiness.extend([(await client.get("/readyz")).status_code for _ in range(4)])
                    return readiness[-4:] == [503] * 4

                # Whichever process answers, the service is no longer ready.
                await eventually(not_ready, within_s=2)
                late = await client.post("/chat", json={"phone": "+34612345699", "question": "late"})
                answered = await asyncio.gather(*in_flight)
            exit_code = await asyncio.to_thread(served.process.wait, 40)
        finally:
            stderr = served.stop()

        assert late.status_code == 200
        assert [r.json()["answer"] for r in answered] == ["ok: q0", "ok: q1", "ok: q2", "ok: q3"]
        assert exit_code == 0
        assert len(events(stderr, "stopped")) == 2
        assert events(stderr, "workers_stopped")

    def test_a_parent_killed_while_its_workers_start_leaves_none_behind(
        self, tmp_path: Path, fake_llm: FakeLLM, database_url: str
    ) -> None:
        ports = {"BEDEL_PORT": str(free_port()), "BEDEL_METRICS_PORT": str(free_port())}
        env = serve_env(database_url, fake_llm.url, **ports, **SHARED_LIMITS)
        parent = subprocess.Popen(
            [sys.executable, "-m", "bedel.cli", "serve", "--workers", "2"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert parent.stderr is not None
        for line in parent.stderr:  # killed as soon as the workers exist, before they have imported Bedel
            if b"workers_started" in line:
                pids = json.loads(line)["pids"]
                parent.kill()
                break
        # The workers hold the log's pipe: it ends only once every one of them has exited.
        parent.communicate(timeout=60)

        assert not [pid for pid in pids if running(pid)]

    async def test_a_worker_that_dies_stops_the_others_and_the_service_exits_1(
        self, tmp_path: Path, fake_llm: FakeLLM, database_url: str
    ) -> None:
        served = await start_serve(serve_env(database_url, fake_llm.url, **SHARED_LIMITS), tmp_path, "--workers", "2")
        try:
            first, second = worker_pids(served)
            os.kill(first, signal.SIGKILL)
            exit_code = await asyncio.to_thread(served.process.wait, 40)
        finally:
            stderr = served.stop()

        assert exit_code == 1
        assert not Path(f"/proc/{second}").exists()
        [died] = events(stderr, "worker_died")
        assert f"worker process {first} exited with status -9" in str(died["message"])
        assert len(events(stderr, "stopped")) == 1  # the other one stopped gracefully
