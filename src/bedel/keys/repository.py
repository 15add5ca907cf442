from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.keys.models import ApiKey


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

    async def active_by_hash(self, key_hash: str) -> ApiKey | None:
        return await self.session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)))

    async def any(self) -> bool:
        return bool(await self.session.scalar(select(exists().select_from(ApiKey))))

    async def all(self) -> Sequence[ApiKey]:
        return (await self.session.scalars(select(ApiKey).order_by(ApiKey.name))).all()

    async def touch(self, key: ApiKey, now: datetime, stale_before: datetime) -> None:
        """Record a use, unless another request (on any replica) recorded one since `stale_before`."""
        last_used = ApiKey.last_used_at
        await self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key.id, last_used.is_(None) | (last_used < stale_before))
            .values(last_used_at=now)
            # The key object is not read again: no need to match it in Python (SQLite's naive times would not compare).
            .execution_options(synchronize_session=False)
        )
