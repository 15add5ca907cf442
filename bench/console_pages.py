"""Console pages on a large database: how long each page takes to render for a signed-in admin.

Run: `.venv/bin/python bench/console_pages.py [--repeat 30] [--no-seed]` with PostgreSQL at
BEDEL_BENCH_CONSOLE_URL (default database `test_outreach`, which it empties and fills). Writes
bench/CONSOLE_RESULTS.md.

- Seed (COPY through asyncpg): 100,000 students (a name, a matrícula and the phone of one conversation
  each), 100,000 threads with 1,000,000 messages spread over the last 90 days (more on weekdays and in
  office hours; questions from WhatsApp, Twilio and the API; answers citing documents, saying "no tengo
  esa información" or handing over; two models), 1% of the conversations waiting for a person (a third
  of them taken by an agent), a WhatsApp contact per phone, 30,000 ratings, and 5 campaigns of 20,000
  recipients each. Messages are Spanish sentences about school matters with an invented word and a
  number each, so the conversation search has a real vocabulary: common words, rare ones, names,
  matrículas and phones.
- Timing: the real app (`create_app`, lifespan included) through httpx's ASGI transport, signed in
  through the sign-in form; each page is requested 3 times to warm up, then `--repeat` times one after
  another; median and 95th percentile (nearest rank) of the wall time per request.
- A page is one line in PAGES; `{campaign}`, `{thread}` and `{student}` in its path are a seeded campaign,
  a conversation and a student's phone.
"""

import argparse
import asyncio
import json
import math
import os
import platform
import random
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
from sqlalchemy import make_url

from bedel import migrate
from bedel.app import create_app
from bedel.chat.tasks import keep_finished_days
from bedel.config import Settings
from bedel.db import Base, create_engine, create_sessionmaker, session_scope, utcnow
from bedel.users import service as users
from bedel.users.models import StaffRole

DATABASE_URL = os.environ.get("BEDEL_BENCH_CONSOLE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test_outreach")
RESULTS = Path(__file__).with_name("CONSOLE_RESULTS.md")
TODAY = datetime.now(UTC).date()


def days_back(days: int) -> str:
    return f"start={(TODAY - timedelta(days=days - 1)).isoformat()}&end={TODAY.isoformat()}"


# (name, path): one line per page. Other console pages add theirs here.
PAGES = [
    ("home", "/console"),
    ("inbox", "/console/inbox"),
    ("inbox list (what the stream fetches)", "/console/inbox/list"),
    ("conversations, no filter", "/console/conversations"),
    ("conversations, page 400", "/console/conversations?page=400"),
    ("search a word in messages", "/console/conversations?q=constancia"),
    ("search a rare invented word", "/console/conversations?q=xoconostle+4242"),
    ("search a name", "/console/conversations?q=Estudiante+4242"),
    ("search a matrícula", "/console/conversations?q=A0004242"),
    ("search a phone", "/console/conversations?q=5500004242"),
    ("handed off, WhatsApp, rated No", "/console/conversations?status=handoff&channel=whatsapp&rated_no=1"),
    ("conversations, last 7 days", f"/console/conversations?since={(TODAY - timedelta(days=7)).isoformat()}"),
    ("one conversation", "/console/conversations/{thread}"),
    ("its history (what the stream fetches)", "/console/conversations/{thread}/history"),
    ("students", "/console/students"),
    ("students, search a name", "/console/students?q=Estudiante+4242"),
    ("one student", "/console/students/{student}"),
    ("columns understood", "/console/students/fields"),
    ("documents", "/console/documents"),
    ("try it", "/console/try"),
    ("try it, find a student", "/console/try?find=Estudiante+4242"),
    ("users", "/console/users"),
    ("campaigns", "/console/campaigns"),
    ("campaign (20,000 recipients)", "/console/campaigns/{campaign}"),
    ("campaign progress (polled)", "/console/campaigns/{campaign}/progress"),
    ("new campaign", "/console/campaigns/new"),
    ("dashboard, 7 days", f"/console/dashboard?{days_back(7)}"),
    ("dashboard, 30 days", f"/console/dashboard?{days_back(30)}"),
]

THREADS = 100_000
MESSAGES = 1_000_000
STUDENTS = 100_000
DAYS = 90
CAMPAIGNS = 5
RECIPIENTS = 20_000
RATINGS = 30_000
ADMIN = ("bench@example.edu", "bench-password-1")
DOCUMENTS = [(str(uuid.uuid4()), f"Reglamento {n}") for n in range(20)]
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
    "Las calificaciones se publican en el portal una semana después del parcial.",
    "La baja temporal se solicita en la coordinación de tu carrera.",
    "En vacaciones la biblioteca abre de 9 a 14 horas.",
]
# One of these and a number end each question and answer: words found in few messages.
INVENTED = ["tlacoyal", "mezquitan", "zapotera", "ahuehuete", "nopalina", "xoconostle", "huizache", "tepetate"]
UNKNOWN = ["¿Hay estacionamiento para motos?", "¿Puedo llevar a mi perro?", "¿Venden uniformes?"]


def spread(rng: random.Random, now: datetime) -> datetime:
    """A moment in the last 90 days, busier on weekdays and in office hours (UTC)."""
    while True:
        moment = now - timedelta(seconds=rng.random() * DAYS * 86_400)
        weight = (1.0 if moment.weekday() < 5 else 0.3) * (1.0 if 13 <= moment.hour <= 23 else 0.25)
        if rng.random() < weight:
            return moment


def phone(n: int) -> str:
    return f"+5255{n:08d}"


def marked(rng: random.Random, sentence: str) -> str:
    return f"{sentence} {rng.choice(INVENTED)} {rng.randint(1, 9999)}"


def conversations(
    rng: random.Random, now: datetime, agent: uuid.UUID
) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """Each thread's row and its messages' rows, ten messages on average."""
    per_thread = MESSAGES // THREADS
    for n in range(THREADS):
        thread_id = uuid.uuid4()
        started = spread(rng, now)
        handoff = n % 100 == 0
        messages: list[tuple[Any, ...]] = []
        at = started
        channel = rng.choices(["whatsapp", "twilio", None], weights=[6, 2, 2])[0]
        for seq in range(1, per_thread + 1):
            at = min(now, at + timedelta(seconds=rng.randint(5, 600)))
            if seq % 2:
                source = f"{channel}:{uuid.uuid4().hex}" if channel else None
                content = rng.choice(UNKNOWN) if rng.random() < 0.1 else marked(rng, rng.choice(QUESTIONS))
                messages.append(
                    (
                        uuid.uuid4(),
                        at,
                        at,
                        thread_id,
                        seq,
                        "user",
                        content,
                        "[]",
                        False,
                        None,
                        0,
                        0,
                        False,
                        None,
                        source,
                    )
                )
                continue
            roll = rng.random()
            sources: list[dict[str, Any]] = []
            handed = (handoff and seq == per_thread) or roll < 0.02
            if handed:
                content = "Te comunico con una persona del equipo."
            elif roll < 0.12:
                content = "No tengo esa información. Te sugiero consultarlo con servicios escolares."
            elif roll < 0.65:
                cited = rng.sample(DOCUMENTS, rng.choice([1, 1, 2]))
                sources = [{"document_id": d, "title": t, "snippet": "…", "score": 3.2} for d, t in cited]
                content = marked(rng, rng.choice(ANSWERS))
            else:
                content = "Según tu registro, tu saldo pendiente es de $1,200.00."
            model = "gpt-4o-mini" if rng.random() < 0.8 else "offline"
            latency = int(rng.lognormvariate(7.0, 0.6))
            messages.append(
                (
                    uuid.uuid4(),
                    at,
                    at,
                    thread_id,
                    seq,
                    "assistant",
                    content,
                    json.dumps(sources),
                    handed,
                    model,
                    rng.randint(600, 2500),
                    rng.randint(40, 300),
                    False,
                    latency,
                    None,
                )
            )
        status = "handoff" if handoff else "active"
        taken = handoff and n % 300 == 0
        yield (
            (
                thread_id,
                started,
                at,
                phone(n),
                status,
                per_thread,
                "",
                0,
                at - timedelta(minutes=30) if handoff else None,
                agent if taken else None,
                at if taken else None,
            ),
            messages,
        )


async def seed(dsn: str) -> dict[str, Any]:
    """Empty the database and fill it; returns the ids the pages need."""
    rng = random.Random(13)
    now = datetime.now(UTC)
    connection = await asyncpg.connect(dsn)
    try:
        names = [table.name for table in reversed(Base.metadata.sorted_tables)]
        await connection.execute(f"TRUNCATE {', '.join(names)} CASCADE")
        agent = await connection.fetchval(
            "INSERT INTO staff_users (id, created_at, updated_at, email, role, password_hash, disabled)"
            " VALUES ($1, now(), now(), 'agente@example.edu', 'agent', 'not-a-hash', false) RETURNING id",
            uuid.uuid4(),
        )
        await connection.execute(
            "INSERT INTO knowledge_version (id, revision, changed_at) VALUES (1, $1, now())", uuid.uuid4().hex
        )
        students = [
            (
                uuid.uuid4(),
                now,
                now,
                phone(n),
                f"Estudiante {n} {rng.choice(INVENTED).title()}",
                f"alumno{n}@example.edu",
                f"A{n:07d}",
                json.dumps(
                    {
                        "carrera": rng.choice(["Derecho", "Medicina", "Contaduría"]),
                        "meses_vencidos": n % 4,
                        "adeudo": f"{(n % 7) * 850}.00",
                        "semestre": 1 + n % 9,
                    }
                ),
            )
            for n in range(STUDENTS)
        ]
        await connection.copy_records_to_table(
            "students",
            records=students,
            columns=["id", "created_at", "updated_at", "phone", "name", "email", "external_id", "attributes"],
        )
        thread_rows, message_rows = [], []
        answers: list[tuple[uuid.UUID, datetime]] = []
        await connection.copy_records_to_table(
            "channel_contacts",
            records=[(uuid.uuid4(), now, now, phone(n), "whatsapp", phone(n)[1:], now) for n in range(STUDENTS)],
            columns=["id", "created_at", "updated_at", "phone", "channel", "address", "last_inbound_at"],
        )
        sample = rng.randrange(THREADS)
        thread_id = None
        for n, (thread, messages) in enumerate(conversations(rng, now, agent)):
            if n == sample:
                thread_id = thread[0]
            thread_rows.append(thread)
            message_rows.extend(messages)
            answers.extend((row[0], row[1]) for row in messages if row[5] == "assistant")
            if len(message_rows) >= 200_000:
                await _copy_messages(connection, thread_rows, message_rows)
                thread_rows, message_rows = [], []
        await _copy_messages(connection, thread_rows, message_rows)
        rated = rng.sample(answers, RATINGS)
        await connection.copy_records_to_table(
            "answer_feedback",
            records=[(uuid.uuid4(), at, at, message_id, rng.random() < 0.8) for message_id, at in rated],
            columns=["id", "created_at", "updated_at", "message_id", "helpful"],
        )
        campaigns = []
        for n in range(CAMPAIGNS):
            campaign_id = uuid.uuid4()
            created = now - timedelta(days=3 * n + 1)
            status = ["running", "completed", "completed", "paused", "cancelled"][n]
            await connection.execute(
                "INSERT INTO campaigns (id, created_at, updated_at, name, channel, message, audience, status, outages,"
                " started_at) VALUES ($1, $2, $2, $3, 'whatsapp_template', $4, $5, $6, 0, $2)",
                campaign_id,
                created,
                f"Recordatorio de pago {n + 1}",
                json.dumps(
                    {"template": {"name": "recordatorio_pago", "language": "es_MX", "parameters": ["{{ name }}"]}}
                ),
                json.dumps({"filter": "meses_vencidos >= 1"}),
                status,
            )
            recipients = []
            for r in range(RECIPIENTS):
                roll = rng.random()
                state = "pending" if status == "running" and roll < 0.4 else "failed" if roll < 0.45 else "sent"
                delivery = None if state == "pending" else rng.choice(["sent", "delivered", "read"])
                error = "(#131026) Message undeliverable" if state == "failed" else None
                sent_at = created + timedelta(seconds=r / 20) if state == "sent" else None
                recipients.append(
                    (
                        campaign_id,
                        phone(r),
                        phone(r),
                        state,
                        1,
                        created,
                        error,
                        f"wamid.{campaign_id.hex[:8]}.{r}" if sent_at else None,
                        sent_at,
                        delivery,
                    )
                )
            await connection.copy_records_to_table(
                "campaign_recipients",
                records=recipients,
                columns=[
                    "campaign_id",
                    "address",
                    "phone",
                    "status",
                    "attempts",
                    "next_attempt_at",
                    "error",
                    "vendor_message_id",
                    "sent_at",
                    "delivery_status",
                ],
            )
            campaigns.append(campaign_id)
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    return {"campaign": campaigns[0], "thread": thread_id, "student": quote(phone(sample), safe="")}


async def _copy_messages(connection: Any, threads: list[tuple[Any, ...]], messages: list[tuple[Any, ...]]) -> None:
    await connection.copy_records_to_table(
        "threads",
        records=threads,
        columns=[
            "id",
            "created_at",
            "updated_at",
            "phone",
            "status",
            "message_count",
            "summary",
            "summarized_through",
            "handoff_at",
            "assigned_to",
            "assigned_at",
        ],
    )
    await connection.copy_records_to_table(
        "messages",
        records=messages,
        columns=[
            "id",
            "created_at",
            "updated_at",
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
            "source_id",
        ],
    )


async def add_admin(url: str) -> None:
    engine = create_engine(url)
    try:
        async for session in session_scope(create_sessionmaker(engine)):
            await users.add_user(session, ADMIN[0], StaffRole.admin, ADMIN[1])
    finally:
        await engine.dispose()


async def sign_in(client: httpx.AsyncClient) -> None:
    page = await client.get("/console/login")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = await client.post("/console/login", data={"csrf_token": token, "email": ADMIN[0], "password": ADMIN[1]})
    assert response.status_code == 303, response.text


def nearest_rank(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]


@asynccontextmanager
async def signed_in(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh app (a process just started) and an admin signed in to it."""
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            _env_file=None, database_url=url, knowledge_index_dir=Path(folder) / "index", jobs_in_process=False
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bedel.test") as client:
                await sign_in(client)
                yield client


async def keep_days_once(url: str, dsn: str) -> tuple[int, float]:
    """What the periodic job does the first time on a database with no day kept yet (chat/tasks.py):
    how many days it kept and how long it took. No view of the dashboard keeps a day."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("TRUNCATE activity_days CASCADE")
    finally:
        await connection.close()
    engine = create_engine(url)
    try:
        started = time.perf_counter()
        days = await keep_finished_days(create_sessionmaker(engine), utcnow)
        seconds = time.perf_counter() - started
    finally:
        await engine.dispose()
    print(f"the job kept {len(days)} days in {seconds:.1f} s", flush=True)
    return len(days), seconds


async def time_pages(
    url: str, ids: dict[str, Any], repeat: int, only: str
) -> list[tuple[str, str, float, float, float, int]]:
    async with signed_in(url) as client:
        rows = []
        for name, template in PAGES:
            if only not in name:
                continue
            path = template.format(**ids)
            times, first = [], 0.0
            for attempt in range(3 + repeat):
                started = time.perf_counter()
                response = await client.get(path)
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status_code == 200, (path, response.status_code)
                first = first or elapsed
                if attempt >= 3:
                    times.append(elapsed)
            rows.append(
                (
                    name,
                    template,
                    first,
                    statistics.median(times),
                    nearest_rank(times, 0.95),
                    len(response.content),
                )
            )
            print(
                f"{name}: first {rows[-1][2]:.1f} ms, median {rows[-1][3]:.1f} ms, p95 {rows[-1][4]:.1f} ms",
                flush=True,
            )
        return rows


async def counts(dsn: str) -> dict[str, int]:
    connection = await asyncpg.connect(dsn)
    try:
        return {
            table: int(await connection.fetchval(f"SELECT count(*) FROM {table}"))
            for table in (
                "students",
                "threads",
                "messages",
                "channel_contacts",
                "answer_feedback",
                "campaigns",
                "campaign_recipients",
            )
        }
    finally:
        await connection.close()


def report(
    rows: list[tuple[str, str, float, float, float, int]],
    kept: tuple[int, float],
    sizes: dict[str, int],
    load: tuple[Any, ...],
    seconds: float | None,
    repeat: int,
) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    lines = [
        "# Console pages on a large database",
        "",
        f"Generated by `bench/console_pages.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC (code at commit "
        f"{commit.stdout.strip()}); re-run with `.venv/bin/python bench/console_pages.py`. Goal: well under 200 ms.",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}, "
        f"PostgreSQL on the same machine, shared with other work. Load average before the timing: "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}.",
        "",
        "Database: "
        + ", ".join(f"{count:,} {table}" for table, count in sizes.items())
        + f"; messages spread over the last {DAYS} days. "
        + (f"Seeded in {seconds:.0f} s" if seconds is not None else "Seeded by an earlier run (`--no-seed`)")
        + ", every index in place.",
        "",
        f"Each page: the real app through httpx's ASGI transport, signed in as an admin; 3 warm-up requests, "
        f"then {repeat} in a row. Wall time per request, client side (the app, its queries and the template). "
        "`first` is the first request after the app started. The dashboard's past days are kept by a "
        "periodic job (chat/tasks.py, every 10 minutes, migration 0011's tables): a view reads the kept days "
        "and today's messages and keeps nothing. Before the pages were timed, the job kept every day of the "
        f"database, none kept before (what it does once, when a replica first starts): {kept[0]} days in "
        f"{kept[1]:.1f} s.",
        "",
        "| page | path | first ms | median ms | p95 ms | bytes |",
        "|---|---|--:|--:|--:|--:|",
    ]
    lines += [
        f"| {name} | `{path}` | {first:.1f} | {median:.1f} | {p95:.1f} | {size:,} |"
        for name, path, first, median, p95, size in rows
    ]
    return "\n".join(lines) + "\n"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--no-seed", action="store_true", help="time the pages on the data already there")
    parser.add_argument("--only", help="time only the pages whose name holds this, and write no results file")
    arguments = parser.parse_args()
    dsn = make_url(DATABASE_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    await asyncio.to_thread(migrate.upgrade, DATABASE_URL)
    started = time.perf_counter()
    if arguments.no_seed:
        connection = await asyncpg.connect(dsn)
        campaign = await connection.fetchval("SELECT id FROM campaigns WHERE status = 'running' LIMIT 1")
        thread, student = await connection.fetchrow(
            "SELECT t.id, t.phone FROM threads t JOIN students s ON s.phone = t.phone ORDER BY t.phone LIMIT 1"
        )
        await connection.close()
        ids = {"campaign": campaign, "thread": thread, "student": quote(student, safe="")}
    else:
        ids = await seed(dsn)
        await add_admin(DATABASE_URL)
    seconds = None if arguments.no_seed else time.perf_counter() - started
    load = os.getloadavg()
    kept = await keep_days_once(DATABASE_URL, dsn)
    rows = await time_pages(DATABASE_URL, ids, arguments.repeat, arguments.only or "")
    if arguments.only:
        return
    RESULTS.write_text(report(rows, kept, await counts(dsn), load, seconds, arguments.repeat), encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    asyncio.run(main())
