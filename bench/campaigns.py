"""Campaign benchmark: how long 100,000 recipients take to enqueue, and the sustained delivery rate of N workers.

Run: `.venv/bin/python bench/campaigns.py [--recipients 100000] [--deliver 20000] [--workers 4]`
(PostgreSQL at BEDEL_BENCH_POSTGRES_URL, default database `bedel_bench`, which it empties). Prints a
markdown section for bench/RESULTS.md.

- Enqueue: students are imported first (not timed); then `create_campaign` with a filter that every
  student matches writes the ledger, timed from the call to the commit, on PostgreSQL and SQLite.
- Delivery: `--workers` real `bedel worker` processes send a WhatsApp template campaign through the real
  Graph API client to bench/fake_graph.py (answers at once), with the rate limit off. The rate is the
  sends the fake counted between 10% and 90% of the campaign, over the time between those moments.
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from bedel import migrate
from bedel.campaigns.models import CampaignChannel
from bedel.campaigns.schemas import CampaignCreate
from bedel.campaigns.service import change_status, create_campaign
from bedel.db import Base, create_engine, create_sessionmaker
from bedel.students.fields import load_field_catalog
from bedel.students.repository import StudentRepository, StudentValues

BENCH_DIR = Path(__file__).parent
POSTGRES_URL = os.environ.get("BEDEL_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/bedel_bench")
GRAPH_PORT = 18_765


def students(count: int) -> list[StudentValues]:
    return [
        {
            "phone": f"+5255{10_000_000 + n:08d}",
            "name": f"Alumno {n}",
            "email": f"alumno{n}@example.edu",
            "external_id": f"A{n:07d}",
            "attributes": {"carrera": "Derecho" if n % 2 else "Medicina", "meses_vencidos": str(n % 4)},
        }
        for n in range(count)
    ]


async def reset(url: str, count: int) -> None:
    await asyncio.to_thread(migrate.upgrade, url)
    engine = create_engine(url)
    async with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(text(f"DELETE FROM {table.name}"))
    async with create_sessionmaker(engine)() as session, session.begin():
        await StudentRepository.from_session(session).upsert_many(students(count))
    await engine.dispose()


async def enqueue(url: str, *, start: bool) -> tuple[float, int]:
    spec = CampaignCreate.model_validate(
        {
            "name": "Recordatorio",
            "channel": "whatsapp_template",
            "message": {"template": {"name": "recordatorio_pago", "parameters": ["{{ name }}"]}},
            "audience": {"filter": "meses_vencidos >= 0"},
        }
    )
    engine = create_engine(url)
    began = time.perf_counter()
    async with create_sessionmaker(engine)() as session, session.begin():
        campaign = await create_campaign(session, spec, load_field_catalog(), {CampaignChannel.whatsapp_template})
        assert not isinstance(campaign, dict) and hasattr(campaign, "id")
        if start:
            await change_status(session, campaign.id, "start")
    elapsed = time.perf_counter() - began
    async with engine.connect() as connection:
        count = (await connection.execute(text("SELECT count(*) FROM campaign_recipients"))).scalar_one()
    await engine.dispose()
    return elapsed, int(count)


def start_processes(url: str, workers: int, workdir: Path) -> list[subprocess.Popen[bytes]]:
    """The fake Graph API, then the workers."""
    graph = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "fake_graph:app",
            "--app-dir",
            str(BENCH_DIR),
            "--port",
            str(GRAPH_PORT),
            "--log-level",
            "critical",
            "--no-access-log",
        ],
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BEDEL_")} | {
        "BEDEL_DATABASE_URL": url,
        "BEDEL_JOBS_IN_PROCESS": "false",
        "BEDEL_WHATSAPP_VERIFY_TOKEN": "bench",
        "BEDEL_WHATSAPP_APP_SECRET": "bench",
        "BEDEL_WHATSAPP_ACCESS_TOKEN": "bench",
        "BEDEL_WHATSAPP_PHONE_NUMBER_ID": "1065",
        "BEDEL_WHATSAPP_API_BASE": f"http://127.0.0.1:{GRAPH_PORT}/v23.0",
        "BEDEL_CAMPAIGN_RATE_WHATSAPP": "0",
        "BEDEL_KNOWLEDGE_INDEX_DIR": str(workdir / "index"),
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "bedel.cli", "worker"],
            env=environment
            | {"BEDEL_PORT": str(GRAPH_PORT + 1 + 2 * n), "BEDEL_METRICS_PORT": str(GRAPH_PORT + 2 + 2 * n)},
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(workers)
    ]
    return [graph, *processes]


async def deliver(url: str, workers: int, total: int, workdir: Path) -> float:
    processes = start_processes(url, workers, workdir)
    try:
        await asyncio.sleep(15)  # every worker is up and polling before the campaign starts
        await enqueue(url, start=True)
        # (moment, sends so far) when 10% and then 90% of the campaign had been sent.
        marks: list[tuple[float, int]] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{GRAPH_PORT}") as client:
            for share in (0.1, 0.9):
                while True:
                    sent = (await client.get("/stats")).json()["messages"]
                    if sent >= share * total:
                        break
                    await asyncio.sleep(0.05)
                marks.append((time.monotonic(), sent))
        (first_at, first), (last_at, last) = marks
        return (last - first) / (last_at - first_at)
    finally:
        for process in processes:
            process.kill()
            process.wait()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--deliver", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=4)
    options = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        for name, url in (("PostgreSQL", POSTGRES_URL), ("SQLite", f"sqlite+aiosqlite:///{workdir / 'bench.db'}")):
            await reset(url, options.recipients)
            seconds, count = await enqueue(url, start=False)
            rows.append(f"| enqueue {count:,} recipients, {name} | {seconds:.1f} s | under 10 s |")
        await reset(POSTGRES_URL, options.deliver)
        rate = await deliver(POSTGRES_URL, options.workers, options.deliver, workdir)
        rows.append(
            f"| deliver {options.deliver:,} with {options.workers} workers, no rate limit, PostgreSQL "
            f"| {rate:,.0f} messages/s | at least 500 messages/s |"
        )
    print("| measure | result | goal |\n|---|---|---|\n" + "\n".join(rows))


if __name__ == "__main__":
    asyncio.run(main())
