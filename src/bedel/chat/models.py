import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, SmallInteger, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bedel.db import Base, RecordMixin
from bedel.delivery import DeliveryStatus


class ThreadStatus(StrEnum):
    active = "active"
    handoff = "handoff"


class Role(StrEnum):
    user = "user"
    assistant = "assistant"
    # A person on staff answering a handed-off conversation.
    staff = "staff"


class DeliveryPath(StrEnum):
    """How a message left: free-form within the 24-hour window, or a fallback once it closed."""

    free_form = "free_form"
    template = "template"
    sms = "sms"
    email = "email"


class Thread(RecordMixin, Base):
    """One conversation per canonical phone, whatever channel it arrives on."""

    __tablename__ = "threads"
    # The console lists conversations by their latest activity, of every status or of one (the newest
    # handed-off ones are found without walking past every other conversation).
    __table_args__ = (
        Index("ix_threads_updated_at", "updated_at"),
        Index("ix_threads_status_updated_at", "status", "updated_at"),
    )

    phone: Mapped[str] = mapped_column(String(16), unique=True)
    status: Mapped[ThreadStatus] = mapped_column(String(20), default=ThreadStatus.active)
    message_count: Mapped[int] = mapped_column(default=0)
    summary: Mapped[str] = mapped_column(Text, default="")
    # Messages with seq <= summarized_through are represented by `summary`.
    summarized_through: Mapped[int] = mapped_column(default=0)
    # A lease, not a transaction, serialises a conversation across replicas:
    # no database connection is held while the LLM thinks.
    locked_until: Mapped[datetime | None]
    lock_token: Mapped[uuid.UUID | None]
    # When a person last took over from the bot: how long the student has waited is counted from it.
    handoff_at: Mapped[datetime | None]
    # The staff user (users.models.StaffUser) answering a handed-off conversation; no foreign key,
    # see migration 0009. Cleared when the conversation goes back to the bot.
    assigned_to: Mapped[uuid.UUID | None]
    assigned_at: Mapped[datetime | None]


class Message(RecordMixin, Base):
    __tablename__ = "messages"
    # created_at: the console's date filters and dashboard; the full-text index is in migration 0009.
    # ix_messages_staff: when a person last wrote in each handed-off conversation (the inbox), from the
    # few staff messages rather than every message of those conversations.
    __table_args__ = (
        UniqueConstraint("thread_id", "seq"),
        Index("ix_messages_created_at", "created_at"),
        Index(
            "ix_messages_staff",
            "thread_id",
            "created_at",
            postgresql_where=text("role = 'staff'"),
            sqlite_where=text("role = 'staff'"),
        ),
    )

    thread_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"))
    seq: Mapped[int]
    role: Mapped[Role] = mapped_column(String(20))
    content: Mapped[str] = mapped_column(Text)
    sources: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    handoff: Mapped[bool] = mapped_column(default=False)
    model: Mapped[str | None] = mapped_column(String(200))
    input_tokens: Mapped[int] = mapped_column(default=0)
    output_tokens: Mapped[int] = mapped_column(default=0)
    usage_estimated: Mapped[bool] = mapped_column(default=False)
    latency_ms: Mapped[int | None]
    delivery_status: Mapped[DeliveryStatus | None] = mapped_column(String(20))
    delivery_error: Mapped[str | None] = mapped_column(Text)
    # The vendor's code when a message failed (e.g. "131047"), explained in Spanish in delivery_error.
    delivery_error_code: Mapped[str | None] = mapped_column(String(20))
    delivery_path: Mapped[DeliveryPath | None] = mapped_column(String(20))
    # The id the vendor gave the message (wamid, MessageSid), which its delivery receipts name.
    vendor_message_id: Mapped[str | None] = mapped_column(String(200), index=True)
    # The channel message a question came from (e.g. "whatsapp:<wamid>"): a re-run job finds its answer.
    source_id: Mapped[str | None] = mapped_column(String(200), index=True)
    # Loaded with the message, without their bytes, so staff see what a student sent.
    attachments: Mapped[list["Attachment"]] = relationship(lazy="selectin", order_by="Attachment.created_at")


class Attachment(RecordMixin, Base):
    """A voice note, image or document a student sent, kept with their message for staff.

    The bytes live in the database, like the rest of the conversation: every replica
    and worker can serve them, and a backup holds them (decision 0013).
    """

    __tablename__ = "attachments"

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    mime_type: Mapped[str] = mapped_column(String(200))
    size_bytes: Mapped[int | None]
    filename: Mapped[str | None] = mapped_column(String(255))
    caption: Mapped[str | None] = mapped_column(Text)
    # Meta's media id, or Twilio's media URL.
    vendor_ref: Mapped[str] = mapped_column(String(500))
    # None when the file was not downloaded (too large, a type Bedel does not take, the vendor failed).
    content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True, deferred_raiseload=True)
    transcript: Mapped[str | None] = mapped_column(Text)
    # Why the file was not downloaded or a voice note not transcribed.
    note: Mapped[str | None] = mapped_column(Text)
    downloaded: Mapped[bool] = mapped_column(default=False)


class ActivityDay(Base):
    """A past UTC day whose dashboard figures are kept in the activity_* tables below, read from its
    messages once (chat/activity.py); deleting the row (and so its figures) has the day read again."""

    __tablename__ = "activity_days"

    day: Mapped[date] = mapped_column(primary_key=True)


def _activity_day() -> Mapped[date]:
    return mapped_column(ForeignKey("activity_days.day", ondelete="CASCADE"), index=True)


class ActivityHour(Base):
    """Questions of one channel, or answers of one outcome and model, in one hour of a kept day."""

    __tablename__ = "activity_hours"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = _activity_day()
    hour: Mapped[int] = mapped_column(SmallInteger)
    role: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str | None] = mapped_column(String(20))
    model: Mapped[str | None] = mapped_column(String(200))
    messages: Mapped[int]
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)


class ActivityLatency(Base):
    """How many answers of a kept day took this long (to 10 ms)."""

    __tablename__ = "activity_latencies"

    day: Mapped[date] = mapped_column(ForeignKey("activity_days.day", ondelete="CASCADE"), primary_key=True)
    latency_ms: Mapped[int] = mapped_column(primary_key=True)
    answers: Mapped[int]


class ActivityCitation(Base):
    """How many answers of a kept day cited a document."""

    __tablename__ = "activity_citations"

    day: Mapped[date] = mapped_column(ForeignKey("activity_days.day", ondelete="CASCADE"), primary_key=True)
    document_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    title: Mapped[str | None] = mapped_column(Text)
    answers: Mapped[int]


class ActivityUnanswered(Base):
    """A question of a kept day answered "no tengo esa información", as written (lowercased), and how often.
    Its own narrow table: a day has hundreds, summed over the period in SQL."""

    __tablename__ = "activity_unanswered"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = _activity_day()
    question: Mapped[str] = mapped_column(Text)
    asked: Mapped[int]
