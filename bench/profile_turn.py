"""Where the CPU of one `/chat` turn goes, by library: cProfile over whole turns, own time grouped by package.

Run: `.venv/bin/python bench/profile_turn.py [--postgres URL] [--turns N]` (prints a markdown table;
bench/PROFILE.md keeps the last run). The app is driven in process through httpx's ASGI transport
(16 conversations at once, the 5 questions of bench/overhead_workload.py each, offline engine, a fresh
SQLite file or the given PostgreSQL database, emptied first), so the client's own share is a row
of its own and can be set aside. cProfile slows everything down about twofold and evenly: read
the shares, not the milliseconds.
"""

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead_workload import QUESTIONS  # noqa: E402

CLIENTS = 16
# Which package a function's file belongs to, first match wins.
GROUPS = (
    ("bedel", "/src/bedel/"),
    ("test client (httpx)", "/httpx/"),
    ("sqlalchemy", "/sqlalchemy/"),
    ("aiosqlite (thread hops)", "/aiosqlite/"),
    ("asyncpg", "/asyncpg/"),
    ("fastapi", "/fastapi/"),
    ("starlette", "/starlette/"),
    ("pydantic", "/pydantic"),
    ("structlog", "/structlog/"),
    ("prometheus_client", "/prometheus_client/"),
    ("limits", "/limits/"),
    ("jinja2", "/jinja2/"),
    ("asyncio event loop", "/asyncio/"),
)


def group_of(filename: str, function: str) -> str:
    for name, marker in GROUPS:
        if marker in filename:
            return name
    if filename == "~":  # a C function: name it by what it is
        if "poll" in function or "select" in function:
            return "waiting in epoll (idle, not CPU)"
        if "SimpleQueue" in function or "lock" in function.lower():
            return "aiosqlite (thread hops)"
        return "C built-ins"
    return "other Python"


async def turns(database_url: str, rounds: int) -> tuple[pstats.Stats, float, int]:
    os.environ.update(
        {
            "BEDEL_DATABASE_URL": database_url,
            "BEDEL_RATE_LIMIT_PER_PHONE": "1000000/minute",
            "BEDEL_RATE_LIMIT_PER_KEY": "1000000/minute",
        }
    )
    from bedel import migrate
    from bedel.app import create_app

    await asyncio.to_thread(migrate.upgrade, database_url)
    app = create_app()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client,
    ):

        async def conversation(phone: int) -> None:
            for question in QUESTIONS:
                response = await client.post("/chat", json={"phone": f"+3461{phone:07d}", "question": question})
                response.raise_for_status()

        async def round_of(first: int) -> None:
            await asyncio.gather(*(conversation(first + n) for n in range(CLIENTS)))

        await round_of(0)  # warm-up
        profile = cProfile.Profile()
        started = time.process_time()
        profile.enable()
        for n in range(rounds):
            await round_of(1000 + n * CLIENTS)
        profile.disable()
        cpu_s = time.process_time() - started
    return pstats.Stats(profile), cpu_s, rounds * CLIENTS * len(QUESTIONS)


def table(stats: pstats.Stats, cpu_s: float, count: int) -> list[str]:
    own: defaultdict[str, float] = defaultdict(float)
    for (filename, _, function), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        own[group_of(filename, function)] += tottime
    busy = sum(seconds for name, seconds in own.items() if not name.startswith("waiting"))
    lines = [
        f"{count} turns, {cpu_s / count * 1000:.2f} ms of process CPU per turn under cProfile "
        f"(load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}).",
        "",
        "| package | own time ms/turn (profiled) | share of the busy time |",
        "|---|--:|--:|",
    ]
    for name, seconds in sorted(own.items(), key=lambda item: -item[1]):
        share = "-" if name.startswith("waiting") else f"{seconds / busy:.0%}"
        lines.append(f"| {name} | {seconds / count * 1000:.2f} | {share} |")
    lines += ["", "Heaviest functions by own time:", "", "| function | calls/turn | own ms/turn |", "|---|--:|--:|"]
    ranked = sorted(stats.stats.items(), key=lambda item: -item[1][2])  # type: ignore[attr-defined]
    for (filename, line, function), (_, calls, tottime, _, _) in ranked[:15]:
        where = f"{Path(filename).name}:{line}" if filename != "~" else "built-in"
        lines.append(f"| `{function}` ({where}) | {calls / count:.1f} | {tottime / count * 1000:.3f} |")
    return lines


async def empty_postgres(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", help="a PostgreSQL URL (postgresql+asyncpg://...), emptied first")
    parser.add_argument("--turns", type=int, default=800, help="measured turns (a multiple of 80)")
    args = parser.parse_args()
    rounds = max(1, args.turns // (CLIENTS * len(QUESTIONS)))
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)  # the search index and any .env stay out of the repository
        url = args.postgres or f"sqlite+aiosqlite:///{folder}/profile.db"
        if args.postgres:
            asyncio.run(empty_postgres(url))
        stats, cpu_s, count = asyncio.run(turns(url, rounds))
    print("\n".join(table(stats, cpu_s, count)))


if __name__ == "__main__":
    main()
