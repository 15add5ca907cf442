import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, delete, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.chat.models import Message, Thread, ThreadStatus
from bedel.db import as_utc, utcnow


class OpenTurn(NamedTuple):
    thread_id: uuid.UUID
    seq: int
    summary: str
    summarized_through: int


class StoredTurn(NamedTuple):
    seq: int
    role: str
    content: str


# The hot path uses the Core tables: ORM-enabled INSERT/UPDATE costs several times more CPU.
_threads = cast(Table, Thread.__table__)
_messages = cast(Table, Message.__table__)


class ThreadRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "ThreadRepository":
        return cls(session)

    async def open_turn(self, phone: str, token: uuid.UUID, ttl: timedelta) -> OpenTurn | None:
        """Lease the phone's thread and reserve the next seq for a question, in one statement.

        None when the thread is missing or another turn holds its lease.
        """
        now = utcnow()
        row = (
            await self.session.execute(
                update(_threads)
                .where(_threads.c.phone == phone, or_(_threads.c.locked_until.is_(None), _threads.c.locked_until < now))
                .values(locked_until=now + ttl, lock_token=token, message_count=_threads.c.message_count + 1)
                .returning(_threads.c.id, _threads.c.message_count, _threads.c.summary, _threads.c.summarized_through)
            )
        ).first()
        return OpenTurn(*row) if row else None

    async def close_turn(self, thread_id: uuid.UUID, token: uuid.UUID, changes: dict[str, Any]) -> bool:
        """Apply the turn's `changes` and give the lease back; False when the lease was no longer ours."""
        result = await self.session.execute(
            update(_threads)
            .where(_threads.c.id == thread_id, _threads.c.lock_token == token)
            .values(locked_until=None, lock_token=None, **changes)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def renew_lease(self, thread_id: uuid.UUID, token: uuid.UUID, ttl: timedelta) -> None:
        await self.session.execute(
            update(_threads)
            .where(_threads.c.id == thread_id, _threads.c.lock_token == token)
            .values(locked_until=utcnow() + ttl)
        )

    async def is_leased(self, thread_id: uuid.UUID) -> bool:
        locked_until = await self.session.scalar(select(_threads.c.locked_until).where(_threads.c.id == thread_id))
        return locked_until is not None and as_utc(locked_until) > utcnow()

    async def add_message(self, **values: Any) -> uuid.UUID:
        message_id = uuid.uuid4()
        await self.session.execute(insert(_messages).values(id=message_id, **values))
        return message_id

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

    async def recent_turns(self, thread_id: uuid.UUID, after_seq: int, limit: int) -> list[StoredTurn]:
        """The newest `limit` messages after `after_seq`, oldest first, as plain rows."""
        rows = await self.session.execute(
            select(_messages.c.seq, _messages.c.role, _messages.c.content)
            .where(_messages.c.thread_id == thread_id, _messages.c.seq > after_seq)
            .order_by(_messages.c.seq.desc())
            .limit(limit)
        )
        return [StoredTurn(*row) for row in reversed(rows.all())]

    async def page_messages(self, thread_id: uuid.UUID, after_seq: int, limit: int) -> Sequence[Message]:
        rows = await self.session.scalars(
            select(Message)
            .where(Message.thread_id == thread_id, Message.seq > after_seq)
            .order_by(Message.seq)
            .limit(limit)
        )
        return rows.all()
