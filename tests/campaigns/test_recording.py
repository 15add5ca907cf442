"""What a campaign sent lands in each student's thread, after any turn in progress there."""

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bedel.campaigns.jobs import RecordJob
from bedel.campaigns.messages import Rendered
from bedel.campaigns.recording import record_handler, record_sent
from bedel.campaigns.repository import Claimed
from bedel.chat.models import Message
from bedel.chat.repository import ThreadRepository
from bedel.db import create_engine, create_sessionmaker
from bedel.delivery import DeliveryStatus
from bedel.errors import Conflict
from bedel.jobs.models import Job
from bedel.jobs.runner import JobContext

PHONE = "+525512345678"
SENT = "[Plantilla recordatorio_pago] Lucía"


@pytest.fixture
async def sessionmaker(clean_database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(clean_database)
    yield create_sessionmaker(engine)
    await engine.dispose()


class TestRecordingWhileATurnHoldsTheThread:
    async def test_the_message_comes_from_a_job_once_the_turn_is_over(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        token = uuid.uuid4()
        async with sessionmaker() as session, session.begin():
            threads = ThreadRepository.from_session(session)
            await threads.create([PHONE])
            turn = await threads.open_turn(PHONE, token, timedelta(minutes=1))
            assert turn is not None
            await record_sent(session, [(Claimed(1, PHONE, PHONE, None, 0), Rendered(SENT))])
        async with sessionmaker() as session:
            [payload] = (await session.scalars(select(Job.payload).where(Job.kind == RecordJob.kind))).all()
        record = record_handler(sessionmaker)

        with pytest.raises(Conflict):
            await record(JobContext(1, payload, 1, False))
        async with sessionmaker() as session, session.begin():
            await ThreadRepository.from_session(session).close_turn(turn.thread_id, token, message_count=1)
        await record(JobContext(1, payload, 2, False))

        async with sessionmaker() as session:
            rows = (await session.execute(select(Message.seq, Message.content, Message.delivery_status))).all()
        assert [tuple(row) for row in rows] == [(2, SENT, DeliveryStatus.sent)]
