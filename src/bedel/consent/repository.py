from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.consent.models import OptOut
from bedel.db import conflict_insert, utcnow


class ConsentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "ConsentRepository":
        return cls(session)

    async def opted_out(self, phones: Sequence[str] | None = None) -> set[str]:
        query = select(OptOut.phone)
        if phones is not None:
            query = query.where(OptOut.phone.in_(phones))
        return set(await self.session.scalars(query))

    async def opt_out(self, phone: str) -> None:
        statement = conflict_insert(self.session, OptOut).values(phone=phone, created_at=utcnow())
        await self.session.execute(statement.on_conflict_do_nothing(index_elements=["phone"]))

    async def opt_in(self, phone: str) -> None:
        await self.session.execute(delete(OptOut).where(OptOut.phone == phone))
