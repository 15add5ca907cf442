import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.chat.models import Message, Thread, ThreadStatus
from bedel.db import utcnow


class ThreadRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "ThreadRepository":
        return cls(session)

    async def take_lease(self, phone: str, token: uuid.UUID, ttl: timedelta) -> Thread | None:
        """Lease the phone's thread and read it, or None when it is missing or leased by another turn.

        The lease is taken before the thread is read, so what is read cannot change under it.
        """
        now = utcnow()
        result = await self.session.execute(
            update(Thread)
            .where(Thread.phone == phone, or_(Thread.locked_until.is_(None), Thread.locked_until < now))
            .values(locked_until=now + ttl, lock_token=token)
            .execution_options(synchronize_session=False)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return None
        query = select(Thread).where(Thread.phone == phone).execution_options(populate_existing=True)
        return await self.session.scalar(query)

    async def create(self, phone: str) -> None:
        """Start the phone's thread unless it exists; two replicas may try at once."""
        insert = postgresql_insert if self.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        now = utcnow()
        await self.session.execute(
            insert(Thread)
            .values(
                id=uuid.uuid4(),
                phone=phone,
                status=ThreadStatus.active,
                message_count=0,
                summary="",
                summarized_through=0,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["phone"])
        )

    async def release_lease(self, thread_id: uuid.UUID, token: uuid.UUID) -> None:
        await self.session.execute(
            update(Thread)
            .where(Thread.id == thread_id, Thread.lock_token == token)
            .values(locked_until=None, lock_token=None)
            .execution_options(synchronize_session=False)
        )

    async def get(self, thread_id: uuid.UUID) -> Thread | None:
        return await self.session.get(Thread, thread_id)

    async def find_many(
        self, *, phone: str | None, status: ThreadStatus | None, limit: int, offset: int
    ) -> Sequence[Thread]:
        query = select(Thread).order_by(Thread.updated_at.desc(), Thread.id).limit(limit).offset(offset)
        if phone is not None:
            query = query.where(Thread.phone == phone)
        if status is not None:
            query = query.where(Thread.status == status)
        return (await self.session.scalars(query)).all()

    async def delete(self, thread: Thread) -> None:
        await self.session.execute(delete(Message).where(Message.thread_id == thread.id))
        await self.session.delete(thread)

    async def recent_messages(self, thread_id: uuid.UUID, after_seq: int, limit: int) -> list[Message]:
        """The newest `limit` messages after `after_seq`, oldest first."""
        rows = await self.session.scalars(
            select(Message)
            .where(Message.thread_id == thread_id, Message.seq > after_seq)
            .order_by(Message.seq.desc())
            .limit(limit)
        )
        return list(reversed(rows.all()))

    async def messages_between(self, thread_id: uuid.UUID, after_seq: int, before_seq: int) -> Sequence[Message]:
        rows = await self.session.scalars(
            select(Message)
            .where(Message.thread_id == thread_id, Message.seq > after_seq, Message.seq < before_seq)
            .order_by(Message.seq)
        )
        return rows.all()

    async def page_messages(self, thread_id: uuid.UUID, after_seq: int, limit: int) -> Sequence[Message]:
        rows = await self.session.scalars(
            select(Message)
            .where(Message.thread_id == thread_id, Message.seq > after_seq)
            .order_by(Message.seq)
            .limit(limit)
        )
        return rows.all()
