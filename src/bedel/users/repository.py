import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.db import conflict_insert
from bedel.users.models import LoginThrottle, StaffRole, StaffSession, StaffUser, ThrottleKind


class StaffUserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "StaffUserRepository":
        return cls(session)

    async def by_email(self, email: str) -> StaffUser | None:
        return await self.session.scalar(select(StaffUser).where(StaffUser.email == email))

    async def by_id(self, user_id: uuid.UUID) -> StaffUser | None:
        return await self.session.get(StaffUser, user_id)

    async def all(self) -> Sequence[StaffUser]:
        return (await self.session.scalars(select(StaffUser).order_by(StaffUser.email))).all()

    async def add(self, user: StaffUser) -> None:
        self.session.add(user)
        await self.session.flush()

    async def active_admins(self) -> int:
        query = select(func.count()).where(StaffUser.role == StaffRole.admin, StaffUser.disabled.is_(False))
        return int(await self.session.scalar(query) or 0)


class StaffSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "StaffSessionRepository":
        return cls(session)

    async def open(self, token_hash: str, user_id: uuid.UUID, now: datetime) -> None:
        self.session.add(StaffSession(token_hash=token_hash, user_id=user_id, last_seen_at=now))
        await self.session.flush()

    async def with_user(self, token_hash: str) -> tuple[StaffSession, StaffUser] | None:
        query = (
            select(StaffSession, StaffUser)
            .join(StaffUser, StaffUser.id == StaffSession.user_id)
            .where(StaffSession.token_hash == token_hash)
        )
        row = (await self.session.execute(query)).one_or_none()
        return None if row is None else (row[0], row[1])

    async def end(self, token_hash: str) -> None:
        await self.session.execute(delete(StaffSession).where(StaffSession.token_hash == token_hash))

    async def end_all_of(self, user_id: uuid.UUID) -> None:
        await self.session.execute(delete(StaffSession).where(StaffSession.user_id == user_id))

    async def sweep(self, idle_since: datetime) -> None:
        """Forget sessions nobody has used since `idle_since`: they can no longer be resumed."""
        await self.session.execute(delete(StaffSession).where(StaffSession.last_seen_at < idle_since))


class LoginThrottleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "LoginThrottleRepository":
        return cls(session)

    async def locked_until(self, keys: list[tuple[ThrottleKind, str]], now: datetime) -> datetime | None:
        """The latest end of a lock-out in force on any of `keys`."""
        matches = [(LoginThrottle.kind == kind) & (LoginThrottle.key == key) for kind, key in keys]
        query = select(func.max(LoginThrottle.locked_until)).where(or_(*matches), LoginThrottle.locked_until > now)
        return await self.session.scalar(query)

    async def count_failure(self, kind: ThrottleKind, key: str, now: datetime) -> tuple[uuid.UUID, int, int]:
        """Add a failure atomically (concurrent sign-ins on other replicas wait for this row);
        returns the row's id, failures and lock-outs so far."""
        insert = conflict_insert(self.session, LoginThrottle).values(
            id=uuid.uuid4(), kind=kind, key=key, failures=1, lockouts=0, created_at=now, updated_at=now
        )
        upsert = insert.on_conflict_do_update(
            index_elements=["kind", "key"], set_={"failures": LoginThrottle.failures + 1, "updated_at": now}
        ).returning(LoginThrottle.id, LoginThrottle.failures, LoginThrottle.lockouts)
        row = (await self.session.execute(upsert)).one()
        return row[0], row[1], row[2]

    async def lock(self, throttle_id: uuid.UUID, until: datetime) -> None:
        """Start a lock-out: the count starts again and the next lock-out will be longer."""
        await self.session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.id == throttle_id)
            .values(failures=0, lockouts=LoginThrottle.lockouts + 1, locked_until=until)
        )

    async def clear(self, kind: ThrottleKind, key: str) -> None:
        await self.session.execute(delete(LoginThrottle).where(LoginThrottle.kind == kind, LoginThrottle.key == key))

    async def forget_before(self, cutoff: datetime) -> None:
        """Drop counts with neither a failure nor a lock-out since `cutoff`."""
        await self.session.execute(
            delete(LoginThrottle).where(
                LoginThrottle.updated_at < cutoff,
                or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until < cutoff),
            )
        )
