from datetime import datetime
from enum import StrEnum

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bedel.db import Base, RecordMixin


class IdentityKind(StrEnum):
    """The identifiers vendors give one person, besides the canonical phone."""

    wa_id = "wa_id"  # Meta's raw wa_id, as sent: "5215512345678"
    bsuid = "bsuid"  # Meta's business-scoped user id: "MX.1502576394655843"
    twilio = "twilio"  # Twilio's From: "whatsapp:+5215512345678"


class ChannelIdentity(RecordMixin, Base):
    """One vendor identifier and the conversation it belongs to.

    `phone` is the conversation key: the student's canonical phone, or, for a
    business-scoped id nobody has verified yet, an anonymous key that no student
    record can hold (see `identities.service.anonymous_key`).
    """

    __tablename__ = "channel_identities"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    kind: Mapped[IdentityKind] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(16), index=True)
    # The verification of an anonymous identity: the student id given, waiting for the second fact.
    claimed_external_id: Mapped[str | None] = mapped_column(String(100))
    failed_attempts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    # With BEDEL_IDENTITY_VERIFICATION_FIELD=email_code: the hash of the code emailed for the claimed id.
    code_hash: Mapped[str | None] = mapped_column(String(64))
    code_expires_at: Mapped[datetime | None]
    # When the student was first told how to verify; None until then.
    invited_at: Mapped[datetime | None]
