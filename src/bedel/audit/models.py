import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from bedel.db import Base, utcnow


class Action(StrEnum):
    """What was done: `<subject>.<verb>`. Reads of a student's data, then changes."""

    thread_read = "thread.read"
    attachment_download = "attachment.download"
    student_read = "student.read"
    student_export = "student.export"
    thread_reply = "thread.reply"
    thread_handoff = "thread.handoff"
    thread_take = "thread.take"
    thread_forget = "thread.forget"
    student_edit = "student.edit"
    student_delete = "student.delete"
    student_erase = "student.erase"
    students_import = "students.import"
    campaign_start = "campaign.start"
    campaign_pause = "campaign.pause"
    campaign_resume = "campaign.resume"
    campaign_cancel = "campaign.cancel"
    key_create = "key.create"
    key_revoke = "key.revoke"
    user_add = "user.add"
    user_disable = "user.disable"
    user_enable = "user.enable"
    user_password_reset = "user.password_reset"  # noqa: S105 (an action, not a password)


class AuditEntry(Base):
    """One read or change. Written once and never updated: there is no `updated_at`."""

    __tablename__ = "audit_entries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # Who: bedel.auth.Caller.
    actor_kind: Mapped[str] = mapped_column(String(10))
    actor_name: Mapped[str] = mapped_column(String(254))
    actor_role: Mapped[str] = mapped_column(String(10))
    address: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[Action] = mapped_column(String(40))
    # The student the entry is about (canonical phone), so their export and erasure find it.
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
    # What else it names: a thread, a campaign, a key's name, an account's email.
    target: Mapped[str | None] = mapped_column(String(254))
    detail: Mapped[dict[str, Any] | None]
