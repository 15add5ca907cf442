import uuid

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from bedel.db import Base, RecordMixin


class AnswerFeedback(RecordMixin, Base):
    """A student's "¿Te sirvió esta respuesta?" on one answer; a second tap changes their mind, not the count."""

    __tablename__ = "answer_feedback"

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), unique=True)
    helpful: Mapped[bool]
