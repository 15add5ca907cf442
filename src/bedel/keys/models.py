from datetime import datetime
from enum import StrEnum

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from bedel.db import Base, RecordMixin


class KeyRole(StrEnum):
    """`client`: may only call /chat; `staff`: every route of the API (not the console)."""

    client = "client"
    staff = "staff"


class ApiKey(RecordMixin, Base):
    """A key is random and long, so a plain SHA-256 of it is enough: only the hash is stored,
    and a copy of the database calls nothing."""

    __tablename__ = "api_keys"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[KeyRole] = mapped_column(String(10))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Written at most once a minute per key, not on every request.
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
