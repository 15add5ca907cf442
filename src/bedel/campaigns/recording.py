"""Write each sent campaign message into the student's thread, so the assistant knows what was sent."""

import uuid
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bedel.campaigns.jobs import RecordJob
from bedel.campaigns.messages import Rendered
from bedel.campaigns.repository import Claimed
from bedel.chat.models import DeliveryStatus, Message, Role, Thread, ThreadStatus
from bedel.chat.threads import append_message
from bedel.db import conflict_insert, utcnow
from bedel.jobs.repository import JobRepository
from bedel.jobs.runner import Handler, JobContext

_threads = cast(Table, Thread.__table__)
_messages = cast(Table, Message.__table__)


async def record_sent(session: AsyncSession, sent: Sequence[tuple[Claimed, Rendered]]) -> None:
    """Append one message per phone, in a few statements for the whole batch.

    A thread busy with a turn right now gets its message from a job instead, once the turn is over.
    """
    texts: dict[str, str] = {}
    later: list[tuple[str, str]] = []
    for recipient, rendered in sent:
        if recipient.phone is None:
            continue
        if recipient.phone in texts:
            later.append((recipient.phone, rendered.text))
        else:
            texts[recipient.phone] = rendered.text
    if not texts:
        return
    now = utcnow()
    await session.execute(
        conflict_insert(session, _threads)
        .values(
            [
                {
                    "id": uuid.uuid4(),
                    "phone": phone,
                    "status": ThreadStatus.active,
                    "message_count": 0,
                    "summary": "",
                    "summarized_through": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for phone in texts
            ]
        )
        .on_conflict_do_nothing(index_elements=["phone"])
    )
    reserved = await session.execute(
        update(_threads)
        .where(
            _threads.c.phone.in_(list(texts)),
            or_(_threads.c.locked_until.is_(None), _threads.c.locked_until < now),
        )
        .values(message_count=_threads.c.message_count + 1, updated_at=now)
        .returning(_threads.c.id, _threads.c.phone, _threads.c.message_count)
    )
    rows = []
    for thread_id, phone, seq in reserved:
        rows.append(
            {
                "id": uuid.uuid4(),
                "thread_id": thread_id,
                "seq": seq,
                "role": Role.assistant,
                "content": texts.pop(phone),
                "delivery_status": DeliveryStatus.sent,
                "created_at": now,
                "updated_at": now,
            }
        )
    if rows:
        await session.execute(_messages.insert(), rows)
    jobs = JobRepository.from_session(session)
    for phone, text in [*texts.items(), *later]:
        job = RecordJob(phone, text)
        await jobs.enqueue(job.kind, job.to_payload(), key=job.key)


def record_handler(sessionmaker: async_sessionmaker[AsyncSession]) -> Handler:
    async def record(context: JobContext) -> None:
        job = RecordJob.from_payload(context.payload)
        # A turn in progress raises Conflict: the job runs again after a backoff.
        async with sessionmaker() as session, session.begin():
            message_id = await append_message(session, job.phone, Role.assistant, job.text)
            await session.execute(
                update(_messages).where(_messages.c.id == message_id).values(delivery_status=DeliveryStatus.sent)
            )

    return record
