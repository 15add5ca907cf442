from sqlalchemy import Table, and_, bindparam, delete, or_, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.budgets.models import TokenUsage

_usage: Table = TokenUsage.__table__  # type: ignore[assignment]
_total = _usage.c.input_tokens + _usage.c.output_tokens

# Every answer runs these: built once with bind parameters, as the chat engine's own statements
# (building a statement costs more CPU than SQLite takes to run it).
_TOTALS = select(_usage.c.period, _usage.c.subject, _total).where(
    or_(
        and_(_usage.c.period == bindparam("b_month"), _usage.c.subject == bindparam("b_institution")),
        and_(_usage.c.period == bindparam("b_day"), _usage.c.subject == bindparam("b_phone")),
    )
)


# Both counts an answer adds to (the student's day, the institution's month), in one statement. Written
# out: SQLAlchemy compiles a multi-row INSERT afresh on every execution, and both databases read this alike.
_ADD = text(
    "INSERT INTO token_usage (period, subject, input_tokens, output_tokens)"
    " VALUES (:b_day, :b_phone, :b_in, :b_out), (:b_month, :b_institution, :b_in, :b_out)"
    " ON CONFLICT (period, subject) DO UPDATE SET"
    " input_tokens = token_usage.input_tokens + excluded.input_tokens,"
    " output_tokens = token_usage.output_tokens + excluded.output_tokens"
    " RETURNING period, subject, input_tokens + output_tokens"
)


class TokenUsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "TokenUsageRepository":
        return cls(session)

    async def totals(self, day: str, phone: str, month: str, institution: str) -> dict[tuple[str, str], int]:
        """Tokens used, input and output together, by the phone that day and the institution that month."""
        params = {"b_day": day, "b_phone": phone, "b_month": month, "b_institution": institution}
        rows = await self.session.execute(_TOTALS, params)
        return {(period, subject): int(total) for period, subject, total in rows}

    async def add(
        self, day: str, phone: str, month: str, institution: str, input_tokens: int, output_tokens: int
    ) -> dict[tuple[str, str], int]:
        """Count tokens for the phone that day and the institution that month, in the caller's
        transaction; the new totals, keyed as `totals` keys them."""
        params = {
            "b_day": day,
            "b_phone": phone,
            "b_month": month,
            "b_institution": institution,
            "b_in": input_tokens,
            "b_out": output_tokens,
        }
        rows = await self.session.execute(_ADD, params)
        return {(period, subject): int(total) for period, subject, total in rows}

    async def forget_days_before(self, day: str, institution: str, limit: int) -> int:
        """Delete up to `limit` students' daily rows older than `day` (they name a phone); how many went."""
        old = _usage.c.subject != institution, _usage.c.period < day
        batch = select(_usage.c.period, _usage.c.subject).where(*old).limit(limit)
        result = await self.session.execute(
            delete(_usage).where(*old, tuple_(_usage.c.period, _usage.c.subject).in_(batch))
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
