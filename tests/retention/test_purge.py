"""Retention: what is past its limit goes in small batches, and nothing newer is touched."""

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bedel.budgets.models import TokenUsage
from bedel.campaigns.models import Campaign, CampaignRecipient, CampaignStatus
from bedel.chat.models import ActivityDay, ActivityUnanswered, Attachment, Message, Role, Thread, ThreadStatus
from bedel.chat.schemas import AttachmentCreate
from bedel.chat.threads import append_message
from bedel.config import Settings
from bedel.db import create_engine, create_sessionmaker, utcnow
from bedel.jobs.models import Job, JobStatus
from bedel.jobs.repository import JobRepository
from bedel.retention import service
from bedel.retention.service import PURGE_JOB, Retention, RetentionPolicy
from tests.polling import eventually

OLD, RECENT = "+525511110001", "+525511110002"
NOW = utcnow()
DAYS = 30


@pytest.fixture
async def sessionmaker(clean_database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(clean_database)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def conversation(
    sessionmaker: async_sessionmaker[AsyncSession], phone: str, ages_days: list[float], *, attachment: bool = False
) -> uuid.UUID:
    """A conversation whose messages were written `ages_days` ago, the thread last changed with the last one."""
    async with sessionmaker() as session, session.begin():
        ids = []
        for n, _ in enumerate(ages_days):
            file = AttachmentCreate("document", "application/pdf", "media-1", 3, content=b"PDF") if attachment else None
            ids.append(await append_message(session, phone, Role.user, f"mensaje {n}", attachment=file))
        for message_id, age in zip(ids, ages_days, strict=True):
            written = NOW - timedelta(days=age)
            await session.execute(update(Message).where(Message.id == message_id).values(created_at=written))
        thread_id = await session.scalar(select(Thread.id).where(Thread.phone == phone))
        assert thread_id is not None
        last = NOW - timedelta(days=min(ages_days))
        await session.execute(update(Thread).where(Thread.id == thread_id).values(updated_at=last))
    return thread_id


async def count(sessionmaker: async_sessionmaker[AsyncSession], model: Any, *where: Any) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def retention(sessionmaker: async_sessionmaker[AsyncSession], **days: int) -> Retention:
    return Retention(sessionmaker, RetentionPolicy(**days), clock=lambda: NOW)


class TestConversations:
    async def test_a_conversation_silent_past_the_limit_goes_whole_with_its_files(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        await conversation(sessionmaker, OLD, [90, 45, 31], attachment=True)
        kept = await conversation(sessionmaker, RECENT, [29])

        purged = await retention(sessionmaker, conversations_days=DAYS).purge()

        assert purged["conversations"] == 3 + 1  # three messages, then their emptied thread
        assert await count(sessionmaker, Thread) == 1
        assert await count(sessionmaker, Message, Message.thread_id == kept) == 1
        # The files' bytes lived in their rows.
        assert await count(sessionmaker, Attachment) == 0

    async def test_the_dashboards_kept_days_past_the_limit_go_with_their_questions(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        old_day, recent_day = (NOW - timedelta(days=45)).date(), (NOW - timedelta(days=2)).date()
        async with sessionmaker() as session, session.begin():
            session.add_all([ActivityDay(day=old_day), ActivityDay(day=recent_day)])
            await session.flush()
            session.add(ActivityUnanswered(day=old_day, question="¿cuándo es la graduación?", asked=1))

        await retention(sessionmaker, conversations_days=DAYS).purge()

        assert await count(sessionmaker, ActivityDay, ActivityDay.day == old_day) == 0
        assert await count(sessionmaker, ActivityUnanswered) == 0
        assert await count(sessionmaker, ActivityDay, ActivityDay.day == recent_day) == 1

    async def test_a_conversation_with_a_recent_message_is_kept_whole(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        thread_id = await conversation(sessionmaker, OLD, [400, 200, 2])

        await retention(sessionmaker, conversations_days=DAYS).purge()

        assert await count(sessionmaker, Message, Message.thread_id == thread_id) == 3

    async def test_an_open_handoff_is_kept_while_its_last_message_is_recent(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        open_handoff = await conversation(sessionmaker, OLD, [60, 1])
        abandoned = await conversation(sessionmaker, RECENT, [60, 40])
        async with sessionmaker() as session, session.begin():
            # As staff took over long ago: the change keeps the thread's own time.
            await session.execute(update(Thread).values(status=ThreadStatus.handoff, updated_at=Thread.updated_at))

        await retention(sessionmaker, conversations_days=DAYS).purge()

        assert await count(sessionmaker, Message, Message.thread_id == open_handoff) == 2
        assert await count(sessionmaker, Thread, Thread.id == abandoned) == 0

    async def test_a_conversation_being_answered_is_not_touched(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        thread_id = await conversation(sessionmaker, OLD, [60])
        async with sessionmaker() as session, session.begin():
            leased = update(Thread).values(
                locked_until=NOW + timedelta(minutes=1), lock_token=uuid.uuid4(), updated_at=Thread.updated_at
            )
            await session.execute(leased)

        await retention(sessionmaker, conversations_days=DAYS).purge()

        assert await count(sessionmaker, Message, Message.thread_id == thread_id) == 1

    async def test_without_a_limit_nothing_goes(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        await conversation(sessionmaker, OLD, [3000])

        assert await retention(sessionmaker).purge() == {"token_counts": 0}
        assert await count(sessionmaker, Message) == 1

    async def test_no_statement_deletes_more_than_a_batch(
        self, sessionmaker: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(service, "BATCH", 4)
        for n in range(3):
            await conversation(sessionmaker, f"+52551111100{n}", [90, 80, 70])
        deleted: list[int] = []

        def record(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            if statement.lstrip().upper().startswith("DELETE"):
                deleted.append(cursor.rowcount)

        engine = sessionmaker.kw["bind"].sync_engine
        event.listen(engine, "after_cursor_execute", record)
        try:
            await retention(sessionmaker, conversations_days=DAYS).purge()
        finally:
            event.remove(engine, "after_cursor_execute", record)

        assert await count(sessionmaker, Message) == 0 and await count(sessionmaker, Thread) == 0
        assert max(deleted) <= 4
        assert sum(deleted) >= 9 + 3


class TestJobsAndCampaigns:
    async def test_finished_jobs_past_the_limit_go_unfinished_ones_stay(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        async with sessionmaker() as session, session.begin():
            jobs = JobRepository.from_session(session)
            for n in range(4):
                await jobs.enqueue("answer", {"n": n}, dedupe_key=f"wamid.{n}")
            ages = {"wamid.0": (JobStatus.done, 40), "wamid.1": (JobStatus.failed, 40)}
            ages |= {"wamid.2": (JobStatus.done, 5), "wamid.3": (JobStatus.queued, 40)}
            for key, (status, age) in ages.items():
                when = NOW - timedelta(days=age)
                await session.execute(update(Job).where(Job.dedupe_key == key).values(status=status, updated_at=when))

        await retention(sessionmaker, jobs_days=DAYS).purge()

        async with sessionmaker() as session:
            left = set((await session.scalars(select(Job.dedupe_key))).all())
        assert left == {"wamid.2", "wamid.3"}

    async def test_a_finished_campaign_past_the_limit_goes_with_its_ledger(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        finished = {
            "old": (CampaignStatus.completed, NOW - timedelta(days=40)),
            "cancelled": (CampaignStatus.cancelled, NOW - timedelta(days=40)),
            "recent": (CampaignStatus.completed, NOW - timedelta(days=3)),
            "paused": (CampaignStatus.paused, None),
        }
        async with sessionmaker() as session, session.begin():
            for name, (status, finished_at) in finished.items():
                campaign = Campaign(name=name, channel="sms", message={"text": "Aviso"}, audience={}, status=status)
                campaign.finished_at = finished_at
                session.add(campaign)
                await session.flush()
                session.add_all(
                    CampaignRecipient(campaign_id=campaign.id, address=f"+52551111{n:04}", phone=f"+52551111{n:04}")
                    for n in range(3)
                )

        await retention(sessionmaker, campaigns_days=DAYS).purge()

        async with sessionmaker() as session:
            left = set((await session.scalars(select(Campaign.name))).all())
        assert left == {"recent", "paused"}
        assert await count(sessionmaker, CampaignRecipient) == 6


class TestTokenCounts:
    async def test_students_daily_counts_go_after_two_months_the_monthly_totals_stay(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        old_day = (NOW - timedelta(days=service.TOKEN_DAYS + 1)).date().isoformat()
        today = NOW.date().isoformat()
        async with sessionmaker() as session, session.begin():
            session.add_all(
                [
                    TokenUsage(period=old_day, subject=OLD, input_tokens=1, output_tokens=1),
                    TokenUsage(period=today, subject=OLD, input_tokens=1, output_tokens=1),
                    TokenUsage(period=old_day[:7], subject="*", input_tokens=2, output_tokens=2),
                ]
            )

        await retention(sessionmaker, jobs_days=DAYS).purge()

        async with sessionmaker() as session:
            left = {(row.period, row.subject) for row in (await session.scalars(select(TokenUsage))).all()}
        assert left == {(today, OLD), (old_day[:7], "*")}


class TestPeriodicJob:
    async def test_the_runner_enqueues_the_purge_once_per_period_and_runs_it(
        self,
        make_settings: Callable[..., Settings],
        make_client: Callable[..., Any],
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        await conversation(sessionmaker, OLD, [90])
        settings = make_settings(jobs_in_process=True, retention_days=DAYS)

        # Two replicas, each with its embedded runner: the purge is enqueued once.
        async with make_client(settings), make_client(settings):

            async def purged() -> bool:
                return (
                    await count(sessionmaker, Thread) == 0
                    and await count(sessionmaker, Job, Job.kind == PURGE_JOB, Job.status == JobStatus.done) == 1
                )

            await eventually(purged)

        assert await count(sessionmaker, Job, Job.kind == PURGE_JOB) == 1

    def test_no_purge_is_scheduled_when_everything_is_kept(self, make_settings: Callable[..., Settings]) -> None:
        assert not RetentionPolicy.from_settings(make_settings(job_retention_days=0)).purges
        assert RetentionPolicy.from_settings(make_settings(campaign_retention_days=90)).purges
