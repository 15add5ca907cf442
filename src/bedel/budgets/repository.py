from sqlalchemy import Table, and_, delete, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.budgets.models import TokenUsage
from bedel.db import conflict_insert

_usage: Table = TokenUsage.__table__  # type: ignore[assignment]


class TokenUsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "TokenUsageRepository":
        return cls(session)

    async def totals(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Tokens used, input and output together, for each (period, subject) that has any."""
        rows = await self.session.execute(
            select(_usage.c.period, _usage.c.subject, _usage.c.input_tokens + _usage.c.output_tokens).where(
                or_(*(and_(_usage.c.period == period, _usage.c.subject == subject) for period, subject in keys))
            )
        )
        return {(period, subject): int(total) for period, subject, total in rows}

    async def add(self, period: str, subject: str, input_tokens: int, output_tokens: int) -> int:
        """Count tokens in the caller's transaction; the new total of (period, subject)."""
        statement = conflict_insert(self.session, _usage).values(
            period=period, subject=subject, input_tokens=input_tokens, output_tokens=output_tokens
        )
        upsert = statement.on_conflict_do_update(
            index_elements=["period", "subject"],
            set_={
                "input_tokens": _usage.c.input_tokens + statement.excluded.input_tokens,
                "output_tokens": _usage.c.output_tokens + statement.excluded.output_tokens,
            },
        ).returning(_usage.c.input_tokens + _usage.c.output_tokens)
        return int((await self.session.execute(upsert)).scalar_one())

    async def forget_days_before(self, day: str, institution: str, limit: int) -> int:
        """Delete up to `limit` students' daily rows older than `day` (they name a phone); how many went."""
        old = _usage.c.subject != institution, _usage.c.period < day
        batch = select(_usage.c.period, _usage.c.subject).where(*old).limit(limit)
        result = await self.session.execute(
            delete(_usage).where(*old, tuple_(_usage.c.period, _usage.c.subject).in_(batch))
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
