import uuid

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.db import conflict_insert, utcnow
from bedel.identities.models import ChannelIdentity, IdentityKind


class IdentityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "IdentityRepository":
        return cls(session)

    async def link(self, kind: IdentityKind, value: str, phone: str) -> None:
        """Map the identifier to the phone, wherever it pointed before."""
        statement = self._insert(kind, value, phone)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["kind", "value"],
                set_={"phone": statement.excluded.phone, "updated_at": statement.excluded.updated_at},
                where=ChannelIdentity.phone != statement.excluded.phone,
            )
        )

    async def claim(self, kind: IdentityKind, value: str, phone: str) -> str:
        """The phone the identifier maps to, mapping it to `phone` if it is new."""
        statement = self._insert(kind, value, phone).on_conflict_do_nothing(index_elements=["kind", "value"])
        await self.session.execute(statement)
        found = await self.phone_of(kind, value)
        assert found is not None
        return found

    async def phone_of(self, kind: IdentityKind, value: str) -> str | None:
        query = select(ChannelIdentity.phone).where(ChannelIdentity.kind == kind, ChannelIdentity.value == value)
        return await self.session.scalar(query)

    async def anonymous(self, phone: str) -> ChannelIdentity | None:
        """The business-scoped id behind an anonymous conversation key, locked for this transaction."""
        query = select(ChannelIdentity).where(
            ChannelIdentity.phone == phone, ChannelIdentity.kind == IdentityKind.bsuid
        )
        return await self.session.scalar(query.with_for_update())

    def _insert(self, kind: IdentityKind, value: str, phone: str) -> postgresql.Insert | sqlite.Insert:
        now = utcnow()
        return conflict_insert(self.session, ChannelIdentity).values(
            id=uuid.uuid4(),
            kind=kind,
            value=value,
            phone=phone,
            failed_attempts=0,
            created_at=now,
            updated_at=now,
        )
