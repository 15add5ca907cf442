from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from bedel.db import Base, RecordMixin
from bedel.llm.ports import StudentRecord


class Student(RecordMixin, Base):
    __tablename__ = "students"

    phone: Mapped[str] = mapped_column(String(16), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(100), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)

    def to_record(self) -> StudentRecord:
        return StudentRecord(
            phone=self.phone,
            name=self.name,
            external_id=self.external_id,
            email=self.email,
            attributes=dict(self.attributes),
        )
