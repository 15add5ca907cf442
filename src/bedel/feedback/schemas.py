from datetime import date

from pydantic import BaseModel


class DailyFeedback(BaseModel):
    day: date
    helpful: int
    not_helpful: int


class FeedbackReport(BaseModel):
    days: list[DailyFeedback]
