import uuid

from sqlalchemy import ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from bedel.db import Base, RecordMixin


class AnswerFeedback(RecordMixin, Base):
    """A student's "¿Te sirvió esta respuesta?" on one answer; a second tap changes their mind, not the count."""

    __tablename__ = "answer_feedback"
    # The dashboard reads the ratings of a period (migration 0010).
    __table_args__ = (Index("ix_answer_feedback_created_at", "created_at"),)

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), unique=True)
    helpful: Mapped[bool]
