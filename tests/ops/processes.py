"""Real `bedel serve` and `bedel worker` processes: their environment, start-up, metrics and jobs."""

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from bedel.db import create_engine
from bedel.jobs.models import Job
from tests.channels.vendors import ACCESS_TOKEN, APP_SECRET, PHONE_NUMBER_ID, VERIFY_TOKEN
from tests.ops.upstreams import FakeGraph
from tests.ports import free_port


def whatsapp_env(graph: FakeGraph, sender: str = "bedel") -> dict[str, str]:
    """The WhatsApp channel on, sending to `graph` as `sender`."""
    return {
        "BEDEL_WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
        "BEDEL_WHATSAPP_APP_SECRET": APP_SECRET,
        "BEDEL_WHATSAPP_ACCESS_TOKEN": ACCESS_TOKEN,
        "BEDEL_WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "BEDEL_WHATSAPP_API_BASE": f"{graph.root}/{sender}/v23.0",
        # Each message its own answer, as these tests count them; tests/channels/test_bursts.py covers bursts.
        "BEDEL_WHATSAPP_BURST_WINDOW_S": "0",
    }


@dataclass
class Served:
    """One `bedel serve` or `bedel worker` process; `stderr` holds its log lines once it has stopped."""

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
        # As in tests/conftest.py: the replies sent are only the answers, the jobs only the answers'.
        "BEDEL_PRIVACY_NOTICE": "off",
        "BEDEL_JOB_RETENTION_DAYS": "0",
        **extra,
    }


async def start_serve(env: dict[str, str], cwd: Path, *options: str) -> Served:
    """Start `bedel serve [options]` and wait until /readyz answers 200."""
    return await _start(["serve", *options], "/readyz", env, cwd)


async def start_worker(env: dict[str, str], cwd: Path) -> Served:
    """Start `bedel worker` and wait until /healthz answers 200 (its jobs have started by then)."""
    return await _start(["worker"], "/healthz", env, cwd)


async def _start(command: list[str], ready_path: str, env: dict[str, str], cwd: Path) -> Served:
    served = Served(
        subprocess.Popen(
            [sys.executable, "-m", "bedel.cli", *command],
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
                if (await client.get(ready_path)).status_code == 200:
                    return served
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"bedel {' '.join(command)} did not become ready: {served.stop().decode()}")


def samples(scrape: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of one metric in a Prometheus scrape, keyed by its sorted labels."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
        if sample.name == name
    }


async def all_jobs(database_url: str) -> list[tuple[str, dict[str, Any], str, int]]:
    """Every job as (kind, payload, status, attempts)."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(select(Job.kind, Job.payload, Job.status, Job.attempts))
            return [tuple(row) for row in rows]
    finally:
        await engine.dispose()


async def all_jobs_done(database_url: str, messages: int) -> bool:
    """An answer job for each of `messages` inbound messages, and every job settled (and counted)."""
    jobs = await all_jobs(database_url)
    answers = sum(kind == "channels.answer" for kind, *_ in jobs)
    return answers == messages and all(status in ("done", "failed") for _, _, status, _ in jobs)
