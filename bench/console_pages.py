"""Console inbox and conversations pages on PostgreSQL with 100,000 threads and 1,000,000 messages.

Run: `.venv/bin/python bench/console_pages.py --database-url postgresql+asyncpg://...` (a database
this may empty; it is migrated to head first). Writes bench/CONSOLE_RESULTS.md.

The data: 100,000 conversations of 10 messages each (a student's question, the bot's answer),
spread over 90 days; 1 % handed to a person, a third of those taken, some answered by staff;
a student record and a WhatsApp contact for every phone; a rating on one answer in 20, "No" on
one in 4 of those. Messages are Spanish sentences drawn from a set of school questions and
answers, with a number and an invented word each, so full-text search has a real vocabulary.
Loaded with COPY, with the full-text index and every other index in place.

Each page is requested through the real app (in process, httpx's ASGI transport, a signed-in
agent) 30 times after 3 warm-up requests; the table gives the median and 95th percentile of the
time to the full response, as the server renders it (no network).
"""

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bedel import migrate  # noqa: E402
from bedel.app import create_app  # noqa: E402
from bedel.config import Settings  # noqa: E402
from bedel.console.inbox import SHOWN  # noqa: E402
from bedel.db import Base, create_engine  # noqa: E402
from bedel.users.models import StaffRole  # noqa: E402
from tests.console.accounts import add_account, page_token, sign_in  # noqa: E402

THREADS = 100_000
PER_THREAD = 10
RUNS = 30
WARM_UP = 3
AGENT = ("agente@example.edu", "agente-clave-bench-1")
QUESTIONS = [
    "¿cuándo cierran las inscripciones del semestre?",
    "necesito una constancia de estudios para mi trabajo",
    "¿cuánto debo de colegiatura este mes?",
    "¿dónde consulto mis calificaciones del parcial?",
    "quiero darme de baja temporal",
    "¿cuál es el horario de la biblioteca en vacaciones?",
    "perdí mi credencial, ¿cómo la repongo?",
    "¿puedo pagar la reinscripción con tarjeta?",
]
ANSWERS = [
    "Las inscripciones cierran el 15 de enero; puedes hacerlas en línea.",
    "Pide la constancia en ventanilla de servicios escolares con tu matrícula.",
    "Tu saldo pendiente aparece en el portal de pagos.",
    "Las calificaciones se publican en el portal una semana después del parcial.",
    "La baja temporal se solicita en la coordinación de tu carrera.",
    "En vacaciones la biblioteca abre de 9 a 14 horas.",
]
INVENTED = ["tlacoyal", "mezquitan", "zapotera", "ahuehuete", "nopalina", "xoconostle", "huizache", "tepetate"]


def phone(n: int) -> str:
    return f"+5255{n:08d}"


async def load(database_url: str, now: datetime, seed: int = 11) -> dict[str, Any]:
    """Empty the database and COPY the conversations in; returns figures about what was loaded."""
    rng = random.Random(seed)
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(text(f"DELETE FROM {table.name}"))
    await add_account(database_url, AGENT[0], StaffRole.agent, AGENT[1])
    async with engine.connect() as connection:
        agent_id = (await connection.execute(text("SELECT id FROM staff_users"))).scalar_one()
    threads, messages, students, contacts, ratings = [], [], [], [], []
    handed_off = 0
    for n in range(THREADS):
        thread_id = uuid.uuid4()
        start = now - timedelta(days=90 * rng.random())
        handoff = rng.random() < 0.01
        handed_off += handoff
        at = start
        for seq in range(1, PER_THREAD + 1):
            at += timedelta(minutes=rng.randint(1, 30))
            user = seq % 2 == 1
            staff = handoff and seq == PER_THREAD and rng.random() < 0.5
            role = "user" if user else ("staff" if staff else "assistant")
            words = f"{rng.choice(QUESTIONS if user else ANSWERS)} {rng.choice(INVENTED)} {rng.randint(1, 9999)}"
            message_id = uuid.uuid4()
            sources = (
                "[]"
                if user
                else json.dumps([{"document_id": "calendario", "title": "Calendario", "snippet": "…", "score": 0.7}])
            )
            messages.append(
                (
                    message_id,
                    thread_id,
                    seq,
                    role,
                    words,
                    sources,
                    False,
                    None if user else "gpt-4o-mini",
                    0 if user else 800,
                    0 if user else 60,
                    False,
                    None if user else 1400,
                    at,
                    at,
                )
            )
            if not user and not staff and rng.random() < 0.05:
                ratings.append((uuid.uuid4(), message_id, rng.random() >= 0.25, at, at))
        taken = handoff and rng.random() < 0.33
        threads.append(
            (
                thread_id,
                phone(n),
                "handoff" if handoff else "active",
                PER_THREAD,
                "",
                0,
                at - timedelta(minutes=30) if handoff else None,
                agent_id if taken else None,
                at if taken else None,
                start,
                at,
            )
        )
        students.append(
            (uuid.uuid4(), phone(n), f"A{n:06d}", f"Estudiante {n} {rng.choice(INVENTED).title()}", "{}", start, start)
        )
        contacts.append((uuid.uuid4(), phone(n), "whatsapp", phone(n)[1:], at, start, at))
    started = time.monotonic()
    async with engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.copy_records_to_table(
            "threads",
            records=threads,
            columns=[
                "id",
                "phone",
                "status",
                "message_count",
                "summary",
                "summarized_through",
                "handoff_at",
                "assigned_to",
                "assigned_at",
                "created_at",
                "updated_at",
            ],
        )
        await raw.copy_records_to_table(
            "messages",
            records=messages,
            columns=[
                "id",
                "thread_id",
                "seq",
                "role",
                "content",
                "sources",
                "handoff",
                "model",
                "input_tokens",
                "output_tokens",
                "usage_estimated",
                "latency_ms",
                "created_at",
                "updated_at",
            ],
        )
        await raw.copy_records_to_table(
            "answer_feedback", records=ratings, columns=["id", "message_id", "helpful", "created_at", "updated_at"]
        )
        await raw.copy_records_to_table(
            "students",
            records=students,
            columns=["id", "phone", "external_id", "name", "attributes", "created_at", "updated_at"],
        )
        await raw.copy_records_to_table(
            "channel_contacts",
            records=contacts,
            columns=["id", "phone", "channel", "address", "last_inbound_at", "created_at", "updated_at"],
        )
        await connection.execute(text("ANALYZE"))
        await connection.commit()
    await engine.dispose()
    return {
        "threads": len(threads),
        "messages": len(messages),
        "handed_off": handed_off,
        "ratings": len(ratings),
        "load_s": time.monotonic() - started,
        "sample_thread": threads[rng.randrange(len(threads))][0],
    }


async def measure(settings: Settings, pages: list[tuple[str, str]]) -> list[tuple[str, str, float, float, int]]:
    app = create_app(settings)
    results = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bedel.test") as client:
            assert (await sign_in(client, *AGENT)).status_code == 303
            await page_token(client)
            for label, path in pages:
                times = []
                for run in range(WARM_UP + RUNS):
                    started = time.perf_counter()
                    response = await client.get(path)
                    elapsed = (time.perf_counter() - started) * 1000
                    assert response.status_code == 200, (path, response.status_code)
                    if run >= WARM_UP:
                        times.append(elapsed)
                times.sort()
                p95 = times[int(len(times) * 0.95) - 1]
                results.append((label, path, statistics.median(times), p95, len(response.content)))
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args()
    await asyncio.to_thread(migrate.upgrade, args.database_url)
    now = datetime.now(UTC)
    loaded = await load(args.database_url, now)
    settings = Settings(_env_file=None, database_url=args.database_url, jobs_in_process=False)
    thread = loaded["sample_thread"]
    pages = [
        ("inbox", "/console/inbox"),
        ("inbox list (what the stream fetches)", "/console/inbox/list"),
        ("conversations, no filter", "/console/conversations"),
        ("conversations, page 400", "/console/conversations?page=400"),
        ("search a word in messages", "/console/conversations?q=constancia"),
        ("search a rare invented word", "/console/conversations?q=xoconostle+4242"),
        ("search a name", "/console/conversations?q=Estudiante+4242"),
        ("search a matrícula", "/console/conversations?q=A004242"),
        ("search a phone", "/console/conversations?q=5500004242"),
        ("handed off, WhatsApp, rated No", "/console/conversations?status=handoff&channel=whatsapp&rated_no=1"),
        ("last 7 days", f"/console/conversations?since={(now - timedelta(days=7)).date().isoformat()}"),
        ("one conversation", f"/console/conversations/{thread}"),
        ("its history (what the stream fetches)", f"/console/conversations/{thread}/history"),
    ]
    results = await measure(settings, pages)
    lines = [
        "# Console pages on PostgreSQL\n",
        f"Generated by `bench/console_pages.py` on {now:%Y-%m-%d %H:%M} UTC "
        f"(load average at the end: {' '.join(f'{load:.2f}' for load in os.getloadavg())}, on a machine shared "
        "with other work).\n",
        f"Data: {loaded['threads']:,} threads, {loaded['messages']:,} messages, {loaded['handed_off']:,} handed off "
        f"(the inbox shows the {SHOWN} waiting longest), {loaded['ratings']:,} ratings; COPY took "
        f"{loaded['load_s']:.0f} s with every index in place.\n",
        f"Each page {RUNS} times after {WARM_UP} warm-up requests, in process (no network).\n",
        "| page | path | p50 ms | p95 ms | bytes |",
        "|---|---|--:|--:|--:|",
    ]
    for label, path, p50, p95, size in results:
        shown = path.replace(str(thread), "{id}")
        lines.append(f"| {label} | `{shown}` | {p50:.1f} | {p95:.1f} | {size:,} |")
    (ROOT / "bench" / "CONSOLE_RESULTS.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
