"""How students rate the answers they get ("¿Te sirvió esta respuesta?"), per day."""

from typing import Annotated

from fastapi import APIRouter, Query

from bedel.auth import StaffOnly
from bedel.db import utcnow
from bedel.dependencies import DBSession
from bedel.feedback.schemas import FeedbackReport
from bedel.feedback.service import feedback_per_day

router = APIRouter(prefix="/feedback", tags=["feedback"], dependencies=[StaffOnly])


@router.get("", response_model=FeedbackReport)
async def get_feedback(session: DBSession, days: Annotated[int, Query(ge=1, le=366)] = 30) -> FeedbackReport:
    """Answers rated helpful and not helpful per day (UTC), over the last `days` days, oldest first."""
    return FeedbackReport(days=await feedback_per_day(session, days, utcnow()))
