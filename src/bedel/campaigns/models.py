import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Double, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bedel.db import Base, RecordMixin, utcnow
from bedel.delivery import DeliveryStatus


class CampaignChannel(StrEnum):
    whatsapp_template = "whatsapp_template"
    sms = "sms"
    email = "email"


class CampaignStatus(StrEnum):
    draft = "draft"
    running = "running"
    paused = "paused"
    completed = "completed"
    cancelled = "cancelled"


class RecipientStatus(StrEnum):
    pending = "pending"
    # Leased by a worker that is sending it now.
    sending = "sending"
    sent = "sent"
    failed = "failed"
    skipped = "skipped"


class SkipReason(StrEnum):
    no_email = "no_email"
    invalid_email = "invalid_email"
    no_phone = "no_phone"
    invalid_phone = "invalid_phone"
    opted_out = "opted_out"
    duplicate = "duplicate"
    cancelled = "cancelled"


class Campaign(RecordMixin, Base):
    __tablename__ = "campaigns"

    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[CampaignChannel] = mapped_column(String(30))
    # The message as given: {"template": {...}} or {"subject": ..., "text": ...}.
    message: Mapped[dict[str, Any]]
    # The audience as given: {"filter": "..."} or {"recipients": <count>}.
    audience: Mapped[dict[str, Any]]
    status: Mapped[CampaignStatus] = mapped_column(String(20), default=CampaignStatus.draft)
    # A provider outage holds all sending until then, instead of spending each recipient's retries.
    held_until: Mapped[datetime | None]
    hold_reason: Mapped[str | None] = mapped_column(Text)
    outages: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class CampaignRecipient(Base):
    """The ledger: one row per recipient and campaign, leased while it is being sent, settled once."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        UniqueConstraint("campaign_id", "address"),
        Index("ix_campaign_recipients_claim", "campaign_id", "status", "next_attempt_at"),
        Index("ix_campaign_recipients_sent", "campaign_id", "sent_at"),
    )

    # An integer id: batches are claimed in order, and a million rows stay compact.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    # The phone or email address the message goes to; None when the student has none (skipped).
    address: Mapped[str | None] = mapped_column(String(320))
    # The canonical phone: the student's thread and opt-out.
    phone: Mapped[str | None] = mapped_column(String(16))
    # The record the message is written from (None for a listed address no student has).
    student_id: Mapped[uuid.UUID | None]
    status: Mapped[RecipientStatus] = mapped_column(String(20), default=RecipientStatus.pending)
    reason: Mapped[SkipReason | None] = mapped_column(String(30))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    leased_until: Mapped[datetime | None]
    lease_token: Mapped[uuid.UUID | None]
    error: Mapped[str | None] = mapped_column(Text)
    vendor_message_id: Mapped[str | None] = mapped_column(String(200), index=True)
    sent_at: Mapped[datetime | None]
    # What the vendor's receipts said after the send (sent, delivered, read, failed), moving forward only.
    delivery_status: Mapped[DeliveryStatus | None] = mapped_column(String(20))
    delivery_error_code: Mapped[str | None] = mapped_column(String(40))


class SendRate(Base):
    """A channel's shared send schedule: the next free moment (epoch seconds), reserved by every worker alike."""

    __tablename__ = "send_rates"

    channel: Mapped[str] = mapped_column(String(30), primary_key=True)
    next_free_s: Mapped[float] = mapped_column(Double())
