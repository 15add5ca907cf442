from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.audit.models import Action, AuditEntry


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "AuditRepository":
        return cls(session)

    async def add(self, entry: AuditEntry) -> None:
        self.session.add(entry)
        await self.session.flush()

    async def page(self, *, phone: str | None, action: Action | None, limit: int, offset: int) -> Sequence[AuditEntry]:
        """Newest first."""
        query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit).offset(offset)
        if phone is not None:
            query = query.where(AuditEntry.phone == phone)
        if action is not None:
            query = query.where(AuditEntry.action == action)
        return (await self.session.scalars(query)).all()
