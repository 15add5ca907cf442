import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bedel.chat.activity import ActivityRepository
from bedel.chat.models import Thread
from bedel.identities.models import ChannelIdentity, IdentityKind
from bedel.identities.service import anonymous_key, is_anonymous
from bedel.privacy.holdings import Holding, Subject
from bedel.privacy.models import ErasureRequest
from bedel.students.models import Student


class PrivacyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "PrivacyRepository":
        return cls(session)

    async def subject(self, phone: str) -> Subject:
        """The student with this canonical phone, and every conversation key that is theirs."""
        student = await self.session.scalar(select(Student).where(Student.phone == phone))
        linked = select(ChannelIdentity.value).where(
            ChannelIdentity.phone == phone, ChannelIdentity.kind == IdentityKind.bsuid
        )
        subject = Subject(phone, tuple(anonymous_key(value) for value in await self.session.scalars(linked)))
        if student is None:
            return subject
        claimants: list[str] = []
        if student.external_id is not None:
            claiming = select(ChannelIdentity.phone).where(ChannelIdentity.claimed_external_id == student.external_id)
            claimants = [key for key in await self.session.scalars(claiming) if is_anonymous(key)]
        return replace(
            subject,
            claimants=tuple(key for key in claimants if key not in subject.linked),
            student_id=student.id,
            external_id=student.external_id,
            email=student.email,
        )

    async def rows(self, holding: Holding, subject: Subject) -> list[dict[str, Any]]:
        table = holding.table
        columns = [column for column in table.columns if column.name not in holding.private]
        query = select(*columns).where(holding.rows(subject)).order_by(*(table.c[name] for name in holding.order_by))
        return [dict(row._mapping) for row in await self.session.execute(query)]

    async def forget_activity(self, subject: Subject) -> None:
        """Drop the dashboard's kept figures of every day the student's conversations touched."""
        activity = ActivityRepository.from_session(self.session)
        for thread_id in await self.session.scalars(select(Thread.id).where(Thread.phone.in_(subject.keys))):
            await activity.forget_thread(thread_id)

    async def erase(self, holding: Holding, subject: Subject) -> int:
        result = await self.session.execute(delete(holding.table).where(holding.rows(subject)))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def drop_search_terms(self) -> None:
        """SQLite's full-text index of messages (migration 0009) keeps a deleted message's words in its
        segments until they are merged; merging them all now drops the erased student's."""
        if self.session.get_bind().dialect.name == "sqlite":
            await self.session.execute(text("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')"))

    async def record_erasure(self, requested_by: str, removed: dict[str, int]) -> ErasureRequest:
        request = ErasureRequest(id=uuid.uuid4(), requested_by=requested_by, removed=removed)
        self.session.add(request)
        await self.session.flush()
        return request

    async def erasures(self, limit: int, offset: int) -> Sequence[ErasureRequest]:
        query = select(ErasureRequest).order_by(ErasureRequest.erased_at.desc(), ErasureRequest.id)
        return (await self.session.scalars(query.limit(limit).offset(offset))).all()


async def empty_write_ahead_log(engine: AsyncEngine) -> None:
    """On SQLite, fold the write-ahead log into the database file and empty it: the log still holds
    the pages as they were before an erasure. PostgreSQL's files are the server's (docs/operations.md)."""
    if engine.dialect.name == "sqlite":
        async with engine.connect() as connection:
            await connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
