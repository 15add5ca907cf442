"""The jobs table as a queue, on SQLite and PostgreSQL: leases, per-key order, dedupe."""

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bedel import migrate
from bedel.db import create_engine, create_sessionmaker, utcnow
from bedel.jobs.models import Job, JobStatus
from bedel.jobs.repository import ClaimedJob, JobRepository

TTL = timedelta(seconds=60)


@pytest.fixture
async def sessions(clean_database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(clean_database)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def enqueue(sessions: async_sessionmaker[AsyncSession], *keys: str | None) -> None:
    async with sessions() as session, session.begin():
        for n, key in enumerate(keys):
            await JobRepository.from_session(session).enqueue("test", {"n": n, "key": key}, key=key)


async def claim(sessions: async_sessionmaker[AsyncSession]) -> ClaimedJob | None:
    async with sessions() as session, session.begin():
        return await JobRepository.from_session(session).claim(TTL)


class TestClaim:
    async def test_concurrent_workers_never_take_the_same_job(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        await enqueue(sessions, *[None] * 30)
        taken: list[int] = []

        async def worker() -> None:
            while (job := await claim(sessions)) is not None:
                taken.append(job.id)

        await asyncio.gather(*(worker() for _ in range(6)))

        assert len(taken) == len(set(taken)) == 30

    async def test_a_keys_next_job_waits_until_the_earlier_one_is_done(
        self, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        await enqueue(sessions, "a", "a", "b")

        first, second, third = await claim(sessions), await claim(sessions), await claim(sessions)
        assert first is not None and second is not None
        assert (first.payload["n"], second.payload["n"], third) == (0, 2, None)
        async with sessions() as session, session.begin():
            await JobRepository.from_session(session).finish(first, JobStatus.done)

        after = await claim(sessions)
        assert after is not None and after.payload["n"] == 1

    async def test_a_job_waiting_for_its_retry_holds_back_its_key(
        self, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        await enqueue(sessions, "a", "a")
        first = await claim(sessions)
        assert first is not None
        async with sessions() as session, session.begin():
            await JobRepository.from_session(session).retry(first, timedelta(hours=1), "Graph API 500")

        assert await claim(sessions) is None

    async def test_a_lapsed_lease_is_taken_over_and_the_old_holder_cannot_settle(
        self, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        await enqueue(sessions, "a")
        async with sessions() as session, session.begin():
            dead = await JobRepository.from_session(session).claim(timedelta(seconds=-1))
        assert dead is not None

        taken = await claim(sessions)
        async with sessions() as session, session.begin():
            await JobRepository.from_session(session).finish(dead, JobStatus.done)

        assert taken is not None and (taken.id, taken.attempts) == (dead.id, 2)
        async with sessions() as session:
            job = await session.get(Job, taken.id)
        assert job is not None and (job.status, job.lease_token) == (JobStatus.running, taken.token)

    async def test_an_empty_queue_is_polled_while_another_process_holds_sqlite_write_lock(self, tmp_path: Path) -> None:
        # An idle runner polls every second in every process: the poll must not queue behind writers.
        database = tmp_path / "jobs.db"
        await asyncio.to_thread(migrate.upgrade, f"sqlite+aiosqlite:///{database}")
        engine = create_engine(f"sqlite+aiosqlite:///{database}")
        other = sqlite3.connect(database)
        other.execute("BEGIN IMMEDIATE")
        try:
            assert await claim(create_sessionmaker(engine)) is None
        finally:
            other.rollback()
            other.close()
            await engine.dispose()


class TestPostpone:
    async def test_a_postponed_job_waits_without_using_an_attempt_and_holds_back_its_key(
        self, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        await enqueue(sessions, "a", "a")
        first = await claim(sessions)
        assert first is not None
        async with sessions() as session, session.begin():
            await JobRepository.from_session(session).postpone(first, utcnow() + timedelta(hours=1))

        assert await claim(sessions) is None
        async with sessions() as session:
            job = await session.get(Job, first.id)
        assert job is not None and (job.status, job.attempts, job.lease_token) == (JobStatus.queued, 0, None)

    async def test_a_postponed_job_runs_when_its_clock_says_it_is_due(
        self, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        await enqueue(sessions, "a")
        first = await claim(sessions)
        assert first is not None
        later = utcnow() + timedelta(hours=1)
        async with sessions() as session, session.begin():
            await JobRepository.from_session(session).postpone(first, later)
        async with sessions() as session, session.begin():
            again = await JobRepository.from_session(session, lambda: later).claim(TTL)

        assert again is not None and (again.id, again.attempts) == (first.id, 1)

    async def test_finishing_queued_jobs_unblocks_their_key_and_spares_running_ones(
        self, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        await enqueue(sessions, "a", "a", "a")
        leader = await claim(sessions)
        assert leader is not None
        async with sessions() as session, session.begin():
            await JobRepository.from_session(session).finish_queued([leader.id, leader.id + 1])
            await JobRepository.from_session(session).finish(leader, JobStatus.done)

        last = await claim(sessions)
        assert last is not None and last.id == leader.id + 2
        async with sessions() as session:
            statuses = [(await session.get(Job, leader.id + n)).status for n in range(3)]  # type: ignore[union-attr]
        assert statuses == [JobStatus.done, JobStatus.done, JobStatus.running]


class TestEnqueue:
    async def test_the_same_dedupe_key_is_enqueued_once(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        async def add() -> bool:
            async with sessions() as session, session.begin():
                return await JobRepository.from_session(session).enqueue("test", {}, dedupe_key="whatsapp:wamid.1")

        added = await asyncio.gather(*(add() for _ in range(10)))

        assert added.count(True) == 1
