import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.db import conflict_insert, utcnow
from bedel.feedback.models import AnswerFeedback


class FeedbackRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "FeedbackRepository":
        return cls(session)

    async def record(self, message_id: uuid.UUID, helpful: bool) -> None:
        """One verdict per answer: a later tap replaces it and keeps the day of the first."""
        now = utcnow()
        statement = conflict_insert(self.session, AnswerFeedback).values(
            id=uuid.uuid4(), message_id=message_id, helpful=helpful, created_at=now, updated_at=now
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["message_id"], set_={"helpful": statement.excluded.helpful, "updated_at": now}
            )
        )

    async def count_by_day(self, since: datetime, until: datetime | None = None) -> list[tuple[Any, int, int]]:
        """(day, helpful, not helpful) for each day with feedback from `since` (until `until`), oldest first."""
        day = func.date(AnswerFeedback.created_at)
        helpful = func.sum(case((AnswerFeedback.helpful, 1), else_=0))
        query = select(day, helpful, func.count()).where(AnswerFeedback.created_at >= since)
        if until is not None:
            query = query.where(AnswerFeedback.created_at < until)
        rows = await self.session.execute(query.group_by(day).order_by(day))
        return [(row[0], int(row[1]), int(row[2]) - int(row[1])) for row in rows]

    @staticmethod
    def unhelpful() -> Select[uuid.UUID]:
        return select(AnswerFeedback.message_id).where(AnswerFeedback.helpful.is_(False))

    async def verdicts_of(self, message_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, bool]:
        rows = await self.session.execute(
            select(AnswerFeedback.message_id, AnswerFeedback.helpful).where(AnswerFeedback.message_id.in_(message_ids))
        )
        return {key: value for key, value in rows}
