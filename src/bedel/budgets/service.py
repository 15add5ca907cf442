"""Token budgets: how much of the model a student may use per day, and the institution per month.

Business rule: usage is what the model reported for each stored answer, counted in the
answer's own transaction, per UTC day and month. A question asked once a budget is spent is
stored and answered with a polite message (and the offer of a person), without the model; the
answer that crosses a budget is still given in full.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from bedel.budgets.repository import TokenUsageRepository
from bedel.config import Settings
from bedel.ops.metrics import count_budget_spent, record_budget_use

INSTITUTION = "*"


class Budget(StrEnum):
    student_daily = "student_daily"
    institution_monthly = "institution_monthly"


@dataclass(frozen=True)
class TokenBudgets:
    """Tokens allowed; 0 is no limit."""

    student_daily: int = 0
    institution_monthly: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> "TokenBudgets":
        return cls(settings.token_budget_student_daily, settings.token_budget_institution_monthly)


def _day(now: datetime) -> str:
    return now.date().isoformat()


def _month(now: datetime) -> str:
    return now.strftime("%Y-%m")


async def spent_budget(session: AsyncSession, phone: str, now: datetime, budgets: TokenBudgets) -> Budget | None:
    """The budget this phone's question finds spent, if one is (the institution's first)."""
    if not (budgets.student_daily or budgets.institution_monthly):
        return None
    day, month = _day(now), _month(now)
    used = await TokenUsageRepository.from_session(session).totals(day, phone, month, INSTITUTION)
    limits = (
        (Budget.institution_monthly, (month, INSTITUTION), budgets.institution_monthly),
        (Budget.student_daily, (day, phone), budgets.student_daily),
    )
    for budget, key, limit in limits:
        if limit and used.get(key, 0) >= limit:
            count_budget_spent(budget)
            return budget
    return None


async def record_usage(
    session: AsyncSession, phone: str, now: datetime, input_tokens: int, output_tokens: int, budgets: TokenBudgets
) -> None:
    """Count an answer's tokens for the student's day and the institution's month."""
    if not input_tokens + output_tokens:
        return
    month = _month(now)
    totals = await TokenUsageRepository.from_session(session).add(
        _day(now), phone, month, INSTITUTION, input_tokens, output_tokens
    )
    record_budget_use(totals[month, INSTITUTION], budgets.institution_monthly)


async def forget_daily_usage(session: AsyncSession, before: datetime, limit: int) -> int:
    """Students' daily counts older than `before` (they name a phone), up to `limit` rows; how many went."""
    return await TokenUsageRepository.from_session(session).forget_days_before(_day(before), INSTITUTION, limit)
