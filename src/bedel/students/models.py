import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from bedel.db import Base, RecordMixin


class Student(RecordMixin, Base):
    __tablename__ = "students"
    # The students loaded last, read as the sample of the list's columns (StudentRepository.recent_attributes).
    __table_args__ = (Index("ix_students_updated_at", "updated_at", "id"),)

    phone: Mapped[str] = mapped_column(String(16), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(100), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)


class StudentLookupKey(Base):
    """One hashed identifier of a student (see `students/lookup.py`); gone with the student."""

    __tablename__ = "student_lookup_keys"

    key_hash: Mapped[str] = mapped_column(String(32), primary_key=True)
    student_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("students.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
