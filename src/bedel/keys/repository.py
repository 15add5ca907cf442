import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row, bindparam, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.keys.models import ApiKey, KeyRole

# Every request runs it: built once, with a bind parameter.
_ACTIVE_BY_HASH = select(ApiKey.id, ApiKey.name, ApiKey.role, ApiKey.last_used_at).where(
    ApiKey.key_hash == bindparam("b_hash"), ApiKey.revoked_at.is_(None)
)


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "ApiKeyRepository":
        return cls(session)

    async def add(self, key: ApiKey) -> None:
        self.session.add(key)
        await self.session.flush()

    async def by_name(self, name: str) -> ApiKey | None:
        return await self.session.scalar(select(ApiKey).where(ApiKey.name == name))

    async def active_by_hash(self, key_hash: str) -> Row[uuid.UUID, str, KeyRole, datetime | None] | None:
        """The columns a request needs, not the whole entity: this runs on every request."""
        return (await self.session.execute(_ACTIVE_BY_HASH, {"b_hash": key_hash})).one_or_none()

    async def any(self) -> bool:
        return bool(await self.session.scalar(select(exists().select_from(ApiKey))))

    async def all(self) -> Sequence[ApiKey]:
        return (await self.session.scalars(select(ApiKey).order_by(ApiKey.name))).all()

    async def touch(self, key_id: uuid.UUID, now: datetime, stale_before: datetime) -> None:
        """Record a use, unless another request (on any replica) recorded one since `stale_before`."""
        last_used = ApiKey.last_used_at
        await self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, last_used.is_(None) | (last_used < stale_before))
            .values(last_used_at=now)
            # The key object is not read again: no need to match it in Python (SQLite's naive times would not compare).
            .execution_options(synchronize_session=False)
        )
