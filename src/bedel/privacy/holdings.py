"""Everything Bedel holds about a student, as one list: what export reads and erasure removes.

A table that holds a student's data gets one entry here, naming the rows that are
theirs; `tests/privacy/test_erasure.py` fails while a table can still hold a
student's phone, name, email or matrícula after their erasure.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Table, false, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from bedel.audit.models import AuditEntry
from bedel.budgets.models import TokenUsage
from bedel.campaigns.models import CampaignRecipient
from bedel.channels.models import ChannelContact
from bedel.chat.models import Attachment, Message, Thread
from bedel.consent.models import OptOut
from bedel.db import Base
from bedel.feedback.models import AnswerFeedback
from bedel.identities.models import ChannelIdentity
from bedel.jobs.models import Job
from bedel.students.models import Student


@dataclass(frozen=True)
class Subject:
    """Whose data: the canonical phone, and what else names the student."""

    phone: str
    # The anonymous conversation keys (identities.service.anonymous_key) of the student's
    # business-scoped ids, and of attempts to verify as them that have not succeeded.
    linked: tuple[str, ...] = ()
    claimants: tuple[str, ...] = ()
    student_id: uuid.UUID | None = None
    external_id: str | None = None
    email: str | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        """Every conversation about the student."""
        return (self.phone, *self.linked, *self.claimants)


@dataclass(frozen=True)
class Holding:
    """One kind of data about a student: the table, the rows that are theirs, the order they are exported in."""

    name: str
    model: type[Base]
    rows: Callable[[Subject], ColumnElement[bool]]
    order_by: tuple[str, ...] = ("created_at",)
    # Never exported: secrets (code hashes, lease tokens) and file bytes (listed, not copied).
    private: frozenset[str] = frozenset()

    @property
    def table(self) -> Table:
        table = self.model.__table__
        assert isinstance(table, Table)
        return table


def _threads(subject: Subject) -> ColumnElement[bool]:
    return Thread.phone.in_(subject.keys)


def _messages(subject: Subject) -> ColumnElement[bool]:
    return Message.thread_id.in_(select(Thread.id).where(_threads(subject)))


def _of_messages(column: InstrumentedAttribute[uuid.UUID]) -> Callable[[Subject], ColumnElement[bool]]:
    return lambda subject: column.in_(select(Message.id).where(_messages(subject)))


def _matching(column: InstrumentedAttribute[str | None], value: str | None) -> ColumnElement[bool]:
    return false() if value is None else column == value


def _receipts(subject: Subject) -> ColumnElement[bool]:
    by_student = false() if subject.student_id is None else CampaignRecipient.student_id == subject.student_id
    return or_(
        CampaignRecipient.phone.in_(subject.keys), by_student, _matching(CampaignRecipient.address, subject.email)
    )


# Export reads them in this order; erasure removes them in the reverse one, dependants first.
HOLDINGS: tuple[Holding, ...] = (
    Holding("student", Student, lambda subject: Student.phone == subject.phone),
    Holding("threads", Thread, _threads, private=frozenset({"lock_token"})),
    Holding("messages", Message, _messages, order_by=("thread_id", "seq")),
    Holding("attachments", Attachment, _of_messages(Attachment.message_id), private=frozenset({"content"})),
    Holding("feedback", AnswerFeedback, _of_messages(AnswerFeedback.message_id)),
    Holding(
        "identities",
        ChannelIdentity,
        lambda subject: ChannelIdentity.phone.in_((subject.phone, *subject.linked)),
        private=frozenset({"code_hash"}),
    ),
    # Someone's attempts to verify as the student, pending or failed (their matrícula is in the claim).
    Holding(
        "verification_attempts",
        ChannelIdentity,
        lambda subject: ChannelIdentity.phone.in_(subject.claimants),
        private=frozenset({"code_hash"}),
    ),
    Holding("contacts", ChannelContact, lambda subject: ChannelContact.phone.in_(subject.keys)),
    Holding("opt_outs", OptOut, lambda subject: OptOut.phone.in_(subject.keys)),
    Holding("campaign_receipts", CampaignRecipient, _receipts, order_by=("id",), private=frozenset({"lease_token"})),
    # Every channel and campaign job names the phone it is about in its payload (channels.jobs, campaigns.jobs).
    Holding(
        "jobs",
        Job,
        lambda subject: Job.payload["phone"].as_string().in_(subject.keys),
        order_by=("id",),
        private=frozenset({"lease_token"}),
    ),
    # Tokens the model spent on the student's questions, per day (the budgets).
    Holding("token_usage", TokenUsage, lambda subject: TokenUsage.subject.in_(subject.keys), order_by=("period",)),
    # Who read or changed the student's data. An erasure's own entry names its receipt, not the student.
    Holding("audit", AuditEntry, lambda subject: AuditEntry.phone.in_(subject.keys), order_by=("at", "id")),
)
