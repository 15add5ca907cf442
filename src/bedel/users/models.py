import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bedel.db import Base, RecordMixin


class StaffRole(StrEnum):
    """`agent`: conversations and handoffs; `admin`: everything, users included."""

    admin = "admin"
    agent = "agent"


class StaffUser(RecordMixin, Base):
    __tablename__ = "staff_users"

    # Stored in lower case, so one address is one account whatever case it is typed in.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[StaffRole] = mapped_column(String(10))
    password_hash: Mapped[str] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(default=False)
    last_login_at: Mapped[datetime | None]


class StaffSession(RecordMixin, Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored,
    so a copy of the database opens no session."""

    __tablename__ = "staff_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    # Inactivity is measured from here; old rows are swept at each sign-in.
    last_seen_at: Mapped[datetime] = mapped_column(index=True)


class ThrottleKind(StrEnum):
    account = "account"  # the email typed, whether or not an account has it
    address = "address"  # the client's IP address


class LoginThrottle(RecordMixin, Base):
    """Failed sign-ins of one email or one address, and its lock-out, kept in the database
    so every replica enforces the same count."""

    __tablename__ = "login_throttles"
    __table_args__ = (UniqueConstraint("kind", "key"),)

    kind: Mapped[ThrottleKind] = mapped_column(String(10))
    key: Mapped[str] = mapped_column(String(254))
    failures: Mapped[int] = mapped_column(default=0)
    # How many times it has been locked: each lock-out lasts twice the one before.
    lockouts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
