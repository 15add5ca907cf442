from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from bedel.db import Base, RecordMixin


class Student(RecordMixin, Base):
    __tablename__ = "students"

    phone: Mapped[str] = mapped_column(String(16), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(100), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
