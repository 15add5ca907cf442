"""Answer feedback: students rate answers with a tap, staff read the counts per day.

Business rule: a student may rate only an answer sent to them, once (a second tap
changes their verdict); the day counted is the day of the first tap, in UTC.
"""

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.chat.threads import is_answer_for
from bedel.feedback.repository import FeedbackRepository
from bedel.feedback.schemas import DailyFeedback


async def record_feedback(session: AsyncSession, phone: str, message_id: uuid.UUID, *, helpful: bool) -> bool:
    """Store the verdict; False (and nothing stored) when `message_id` is not an answer in the phone's thread."""
    if not await is_answer_for(session, message_id, phone):
        return False
    await FeedbackRepository.from_session(session).record(message_id, helpful)
    return True


async def feedback_per_day(session: AsyncSession, days: int, now: datetime) -> list[DailyFeedback]:
    """Counts for today and the `days - 1` days before it; days without feedback are left out."""
    since = datetime.combine(now.date() - timedelta(days=days - 1), datetime.min.time(), tzinfo=now.tzinfo)
    return await feedback_between(session, since, None)


async def feedback_between(session: AsyncSession, start: datetime, end: datetime | None) -> list[DailyFeedback]:
    """Counts per day from `start` up to (not including) `end`; days without feedback are left out."""
    rows = await FeedbackRepository.from_session(session).count_by_day(start, end)
    # SQLite's date() gives text, PostgreSQL's a date.
    return [
        DailyFeedback(day=day if isinstance(day, date) else date.fromisoformat(day), helpful=yes, not_helpful=no)
        for day, yes, no in rows
    ]


def answers_rated_unhelpful() -> Select[uuid.UUID]:
    """The answers students rated "No", as a subquery for a conversation search."""
    return FeedbackRepository.unhelpful()


async def verdicts_of(session: AsyncSession, message_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, bool]:
    """Each rated answer among these and whether the student found it helpful."""
    return await FeedbackRepository.from_session(session).verdicts_of(message_ids)
