"""Write each sent campaign message into the student's thread, so the assistant knows what was sent."""

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bedel.campaigns.jobs import RecordJob
from bedel.campaigns.messages import Rendered
from bedel.campaigns.repository import Claimed
from bedel.chat.models import Role
from bedel.chat.threads import NewMessage, append_message, append_messages
from bedel.delivery import DeliveryStatus
from bedel.jobs.repository import JobRepository
from bedel.jobs.runner import Handler, JobContext


async def record_sent(session: AsyncSession, sent: Sequence[tuple[Claimed, Rendered]]) -> None:
    """Append one message per send, in a few statements for the whole batch.

    A thread busy with a turn right now gets its messages from jobs instead, once the turn is over.
    """
    messages = [
        NewMessage(recipient.phone, Role.assistant, rendered.text, delivery_status=DeliveryStatus.sent)
        for recipient, rendered in sent
        if recipient.phone is not None
    ]
    appended = await append_messages(session, messages)
    jobs = JobRepository.from_session(session)
    for message, message_id in zip(messages, appended, strict=True):
        if message_id is None:
            job = RecordJob(message.phone, message.content)
            await jobs.enqueue(job.kind, job.to_payload(), key=job.key)


def record_handler(sessionmaker: async_sessionmaker[AsyncSession]) -> Handler:
    async def record(context: JobContext) -> None:
        job = RecordJob.from_payload(context.payload)
        # A turn in progress raises Conflict: the job runs again after a backoff.
        async with sessionmaker() as session, session.begin():
            await append_message(session, job.phone, Role.assistant, job.text, delivery_status=DeliveryStatus.sent)

    return record
