"""Erasing a student with a large history, among many others: how long export and erasure take.

Run: `.venv/bin/python bench/erasure.py [--runs 3]` with PostgreSQL at BEDEL_BENCH_ERASURE_URL
(default database `bench_erasure`, which it empties and fills: `createdb -h 127.0.0.1 -U postgres
bench_erasure`). SQLite runs in a temporary file. Writes bench/ERASURE_RESULTS.md.

- Seed, per database: 2,000 other students with a 50-message conversation each (100,000 messages),
  their WhatsApp contacts and identities, 100,000 finished jobs, a campaign to all of them. Then the
  student to erase: 10,000 messages, 200 photos of 200 KB (40 MB of bytes in the database), 1,000
  ratings, 10,000 finished jobs, receipts of 20 campaigns, identities, a contact, an opt-out.
- Timing: `privacy.service.export_student`, then `erase_student`, its commit and the scrub that follows
  (on SQLite: the write-ahead log emptied), wall time; the student is seeded again before each run;
  median of `--runs`.
"""

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from bedel import migrate
from bedel.auth import Caller
from bedel.campaigns.models import Campaign, CampaignRecipient
from bedel.channels.models import ChannelContact
from bedel.chat.models import Attachment, Message, Thread
from bedel.consent.models import OptOut
from bedel.db import Base, create_engine, create_sessionmaker, session_scope
from bedel.feedback.models import AnswerFeedback
from bedel.identities.models import ChannelIdentity
from bedel.jobs.models import Job
from bedel.privacy import service
from bedel.students.models import Student

POSTGRES_URL = os.environ.get("BEDEL_BENCH_ERASURE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/bench_erasure")
RESULTS = Path(__file__).with_name("ERASURE_RESULTS.md")
OTHERS, OTHER_MESSAGES, OTHER_JOBS = 2_000, 50, 100_000
MESSAGES, PHOTOS, PHOTO_BYTES, RATINGS, JOBS, CAMPAIGNS = 10_000, 200, 200_000, 1_000, 10_000, 20
PHONE = "+525500000000"
BATCH = 5_000
BENCH = Caller.command_line()


def phone(n: int) -> str:
    return f"+5255{n + 1:08d}"


def record(**values: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"id": uuid.uuid4(), "created_at": now, "updated_at": now, **values}


class Seeder:
    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        self.campaign_ids: list[uuid.UUID] = []

    async def rows(self, model: type[Base], rows: list[dict[str, Any]]) -> None:
        async with self.engine.begin() as connection:
            for start in range(0, len(rows), BATCH):
                await connection.execute(insert(model), rows[start : start + BATCH])

    async def conversation(self, key: str, messages: int, *, photos: int = 0, ratings: int = 0) -> None:
        thread = record(phone=key, status="active", message_count=messages, summary="", summarized_through=0)
        await self.rows(Thread, [thread])
        rows = [
            record(
                thread_id=thread["id"],
                seq=seq,
                role="user" if seq % 2 else "assistant",
                content=f"Mensaje {seq} de {key}: ¿cuándo se paga la colegiatura del semestre?",
                sources=[],
                handoff=False,
                input_tokens=0,
                output_tokens=0,
                usage_estimated=False,
            )
            for seq in range(1, messages + 1)
        ]
        await self.rows(Message, rows)
        photo = b"\xff\xd8\xff\xe0" + os.urandom(PHOTO_BYTES - 4)
        attachments = [
            record(
                message_id=rows[n * 2]["id"],
                kind="image",
                mime_type="image/jpeg",
                size_bytes=len(photo),
                vendor_ref=f"media-{n}",
                content=photo,
                downloaded=True,
            )
            for n in range(photos)
        ]
        for start in range(0, len(attachments), 20):  # 4 MB a statement
            await self.rows(Attachment, attachments[start : start + 20])
        await self.rows(
            AnswerFeedback, [record(message_id=rows[n * 2 + 1]["id"], helpful=True) for n in range(ratings)]
        )

    async def person(self, key: str, n: int) -> None:
        await self.rows(
            Student,
            [record(phone=key, external_id=f"A{n:07d}", name=f"Estudiante {n}", email=f"e{n}@x.edu", attributes={})],
        )
        await self.rows(
            ChannelContact, [record(phone=key, channel="whatsapp", address=key[1:], last_inbound_at=datetime.now(UTC))]
        )
        await self.rows(ChannelIdentity, [record(kind="wa_id", value=key[1:], phone=key, failed_attempts=0)])

    async def jobs(self, keys: list[str], count: int) -> None:
        now = datetime.now(UTC)
        rows = [
            {
                "kind": "channels.deliver",
                "key": f"deliver:{keys[n % len(keys)]}",
                "payload": {"phone": keys[n % len(keys)], "text": "Tu pago vence el viernes.", "channel": "whatsapp"},
                "status": "done",
                "attempts": 1,
                "run_after": now,
                "created_at": now,
                "updated_at": now,
            }
            for n in range(count)
        ]
        await self.rows(Job, rows)

    async def background(self) -> None:
        for n in range(OTHERS):
            await self.person(phone(n), n)
        for n in range(OTHERS):
            await self.conversation(phone(n), OTHER_MESSAGES)
        await self.jobs([phone(n) for n in range(OTHERS)], OTHER_JOBS)
        for n in range(CAMPAIGNS):
            campaign = record(
                name=f"Aviso {n}",
                channel="whatsapp_template",
                message={"template": {}},
                audience={},
                status="completed",
                outages=0,
            )
            self.campaign_ids.append(campaign["id"])
            await self.rows(Campaign, [campaign])
        recipients = [
            {
                "campaign_id": self.campaign_ids[0],
                "address": phone(n)[1:],
                "phone": phone(n),
                "status": "sent",
                "attempts": 1,
            }
            for n in range(OTHERS)
        ]
        await self.rows(CampaignRecipient, recipients)

    async def subject(self) -> None:
        await self.person(PHONE, 9_999_999)
        await self.conversation(PHONE, MESSAGES, photos=PHOTOS, ratings=RATINGS)
        await self.jobs([PHONE], JOBS)
        receipts = [
            {"campaign_id": campaign_id, "address": PHONE[1:], "phone": PHONE, "status": "sent", "attempts": 1}
            for campaign_id in self.campaign_ids
        ]
        await self.rows(CampaignRecipient, receipts)
        await self.rows(OptOut, [{"phone": PHONE}])


async def timed_run(url: str, seeder: Seeder) -> tuple[float, float, dict[str, int]]:
    await seeder.subject()
    sessions = create_sessionmaker(seeder.engine)
    started = time.perf_counter()
    async with sessions() as session:
        exported = await service.export_student(session, PHONE, BENCH)
    export_s = time.perf_counter() - started
    assert len(exported.holdings["messages"]) == MESSAGES
    started = time.perf_counter()
    async for session in session_scope(sessions):
        erasure = await service.erase_student(session, PHONE, BENCH)
    await service.scrub_after_erasure(seeder.engine)
    erase_s = time.perf_counter() - started
    return export_s, erase_s, dict(erasure.removed)


async def bench(url: str, runs: int) -> dict[str, Any]:
    seeder = Seeder(url)
    async with seeder.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "knowledge_version":
                await connection.execute(text(f"DELETE FROM {table.name}"))
    started = time.perf_counter()
    await seeder.background()
    seeded_s = time.perf_counter() - started
    results = [await timed_run(url, seeder) for _ in range(runs)]
    await seeder.engine.dispose()
    return {
        "seeded_s": seeded_s,
        "export_s": statistics.median(r[0] for r in results),
        "erase_s": statistics.median(r[1] for r in results),
        "all_erase_s": [r[1] for r in results],
        "removed": results[0][2],
    }


def report(results: dict[str, dict[str, Any]], runs: int) -> str:
    load = os.getloadavg()
    removed = next(iter(results.values()))["removed"]
    lines = [
        "# Erasing a student with a large history",
        "",
        f"Generated by `bench/erasure.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; re-run with "
        "`.venv/bin/python bench/erasure.py`. Goal: an ARCO request is answered in seconds, not minutes.",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}, "
        "PostgreSQL on the same machine, shared with other work. "
        f"Load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}.",
        "",
        f"Database: {OTHERS:,} other students with {OTHERS * OTHER_MESSAGES:,} messages, {OTHER_JOBS:,} finished "
        f"jobs and a campaign to all of them. The student erased: {MESSAGES:,} messages, {PHOTOS} photos of "
        f"{PHOTO_BYTES // 1000} KB ({PHOTOS * PHOTO_BYTES // 1_000_000} MB of bytes), {RATINGS:,} ratings, "
        f"{JOBS:,} finished jobs, receipts of {CAMPAIGNS} campaigns, identity, contact, opt-out.",
        "",
        f"Rows removed per erasure: {', '.join(f'{count:,} {name}' for name, count in removed.items())}.",
        "",
        f"Wall time of `export_student`, and of `erase_student` with its commit and the scrub after it (SQLite: "
        f"search index merged, write-ahead log emptied); median of {runs} runs (the student seeded again before each).",
        "",
        "| database | seed s | export s | erase s | erase runs s |",
        "|---|--:|--:|--:|---|",
    ]
    for name, result in results.items():
        runs_s = ", ".join(f"{s:.2f}" for s in result["all_erase_s"])
        lines.append(
            f"| {name} | {result['seeded_s']:.0f} | {result['export_s']:.2f} | {result['erase_s']:.2f} | {runs_s} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as directory:
        sqlite_url = f"sqlite+aiosqlite:///{Path(directory) / 'bedel.db'}"
        migrate.upgrade(sqlite_url)
        results["SQLite"] = asyncio.run(bench(sqlite_url, args.runs))
        print(results["SQLite"])
    migrate.upgrade(POSTGRES_URL)
    results["PostgreSQL"] = asyncio.run(bench(POSTGRES_URL, args.runs))
    print(results["PostgreSQL"])
    RESULTS.write_text(report(results, args.runs))
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
