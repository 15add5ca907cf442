"""Campaigns: choose the audience, write the ledger, and start, pause, resume or cancel the sending.

Business rules: the ledger holds one row per recipient (unique per campaign),
written once when the campaign is created, so what a campaign reaches is fixed
and visible before it starts; a recipient without the channel's address, with
an invalid one, or who opted out is skipped with the reason; messages are
written from each recipient's own record when sent.
"""

import asyncio
import re
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.campaigns.audience import Fields, StudentFilter, check_known, field_key, student_fields
from bedel.campaigns.messages import CampaignMessage, RenderFailed
from bedel.campaigns.models import (
    Campaign,
    CampaignChannel,
    CampaignStatus,
    RecipientStatus,
    SkipReason,
)
from bedel.campaigns.repository import CampaignRepository, Claimed
from bedel.campaigns.schemas import CampaignCreate, CampaignOut, Preview, Progress, RecipientOut, RecipientPage, Sample
from bedel.consent.service import opted_out_phones
from bedel.db import as_utc, utcnow
from bedel.delivery import DeliveryStatus
from bedel.errors import Conflict, NotFound
from bedel.phones import InvalidPhone, is_dialable, normalize_phone
from bedel.students.fields import FieldCatalog, FieldKind, IdentityRole, humanize_column
from bedel.students.models import Student

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_IDENTITY = {"phone", "name", "email", "external_id"}
SAMPLES = 3
RATE_WINDOW = timedelta(seconds=60)


@dataclass(slots=True)
class _Person:
    student_id: uuid.UUID | None
    phone: str | None
    email: str | None
    fields: Fields


async def _people(session: AsyncSession, ids: Collection[uuid.UUID] | None = None) -> list[_Person]:
    """Every student (or those with `ids`) with their fields as filters and templates see them."""
    query = select(Student.id, Student.phone, Student.name, Student.email, Student.external_id, Student.attributes)
    if ids is not None:
        query = query.where(Student.id.in_(ids))
    return [
        _Person(
            student_id,
            phone,
            email,
            student_fields(phone=phone, name=name, email=email, external_id=external_id, attributes=attributes),
        )
        for student_id, phone, name, email, external_id, attributes in await session.execute(query)
    ]


def _listed(items: Sequence[str], people: Sequence[_Person]) -> list[_Person | str]:
    """Each listed phone or email as the student who has it, or as itself when no student does."""
    by_phone = {person.phone: person for person in people}
    by_email = {person.email.lower(): person for person in people if person.email}
    found: list[_Person | str] = []
    for item in items:
        value = item.strip()
        if "@" in value:
            found.append(by_email.get(value.lower()) or _Person(None, None, value, {"email": value}))
            continue
        try:
            phone = normalize_phone(value)
        except InvalidPhone:
            found.append(value)
            continue
        found.append(by_phone.get(phone) or _Person(None, phone, None, {"phone": phone}))
    return found


def _address(channel: CampaignChannel, person: _Person) -> tuple[str | None, SkipReason | None]:
    if channel == CampaignChannel.email:
        if not person.email:
            return None, SkipReason.no_email
        email = person.email.strip()
        return (email, None) if _EMAIL.fullmatch(email) else (None, SkipReason.invalid_email)
    if not person.phone:
        return None, SkipReason.no_phone
    return (person.phone, None) if is_dialable(person.phone) else (None, SkipReason.invalid_phone)


async def create_campaign(
    session: AsyncSession, spec: CampaignCreate, catalog: FieldCatalog, channels: set[CampaignChannel]
) -> Campaign | Preview:
    """Write the campaign and its ledger as a draft, or with `dry_run` only describe what it would do."""
    if spec.channel not in channels:
        raise Conflict(f"the {spec.channel} channel is not configured: see the campaign settings in README.md")
    message = CampaignMessage(spec.channel, spec.message.model_dump(exclude_none=True))
    people = await _people(session)
    opted_out = await opted_out_phones(session)
    # Seconds of pure Python for 100,000 students: in a thread, so the event loop keeps answering meanwhile.
    ledger = await asyncio.to_thread(_ledger, spec, message, catalog, people, opted_out)
    if spec.dry_run:
        return Preview(
            recipients=len(ledger.sendable), skipped=ledger.skipped, samples=_samples(message, ledger.sendable)
        )
    campaign = Campaign(
        id=uuid.uuid4(),
        name=spec.name,
        channel=spec.channel,
        message=spec.message.model_dump(exclude_none=True),
        audience={"filter": spec.audience.filter}
        if spec.audience.filter is not None
        else {"recipients": len(spec.audience.recipients or [])},
        status=CampaignStatus.draft,
        outages=0,
    )
    repository = CampaignRepository.from_session(session)
    repository.add(campaign)
    await session.flush()
    now = utcnow()
    await repository.add_recipients(
        [
            {
                "campaign_id": campaign.id,
                "status": RecipientStatus.pending if row["reason"] is None else RecipientStatus.skipped,
                "attempts": 0,
                "next_attempt_at": now,
                "error": None,
            }
            | row
            for row in ledger.rows
        ]
    )
    return campaign


@dataclass
class _Ledger:
    rows: list[dict[str, Any]] = field(default_factory=list)
    sendable: list[tuple[str, _Person]] = field(default_factory=list)
    skipped: dict[SkipReason, int] = field(default_factory=dict)


def _ledger(
    spec: CampaignCreate,
    message: CampaignMessage,
    catalog: FieldCatalog,
    people: list[_Person],
    opted_out: set[str],
) -> _Ledger:
    """Who the campaign reaches, and who it skips and why: one row per recipient, addresses unique."""
    known = _IDENTITY.union(*(person.fields.keys() for person in people))
    check_known(message.variables, known, "message")
    audience: list[_Person | str]
    if spec.audience.filter is not None:
        chosen = StudentFilter(spec.audience.filter, catalog)
        check_known(chosen.fields, known, "audience.filter")
        audience = [person for person in people if chosen.matches(person.fields)]
    else:
        assert spec.audience.recipients is not None
        audience = _listed(spec.audience.recipients, people)
    ledger = _Ledger()
    seen: set[str] = set()
    for person in audience:
        if isinstance(person, str):
            row = {"address": None, "phone": None, "student_id": None, "reason": SkipReason.invalid_phone}
            ledger.rows.append(row | {"error": f"{person[:40]!r} is neither a phone nor an email"})
            continue
        address, reason = _address(spec.channel, person)
        if reason is None and person.phone in opted_out:
            address, reason = None, SkipReason.opted_out
        if address is not None and address.lower() in seen:
            address, reason = None, SkipReason.duplicate
        ledger.rows.append(
            {"address": address, "phone": person.phone, "student_id": person.student_id, "reason": reason}
        )
        if address is not None:
            seen.add(address.lower())
            ledger.sendable.append((address, person))
    for row in ledger.rows:
        if row["reason"] is not None:
            ledger.skipped[row["reason"]] = ledger.skipped.get(row["reason"], 0) + 1
    return ledger


def _samples(message: CampaignMessage, sendable: Sequence[tuple[str, _Person]]) -> list[Sample]:
    samples = []
    for address, person in sendable[:SAMPLES]:
        try:
            rendered = message.render(person.fields)
        except RenderFailed as exc:
            samples.append(Sample(to=address, text=str(exc)))
            continue
        samples.append(
            Sample(
                to=address,
                text=rendered.body or rendered.text,
                subject=rendered.subject,
                template=rendered.template,
                parameters=rendered.parameters,
            )
        )
    return samples


@dataclass(frozen=True)
class FieldChoice:
    """A field a filter may name: its key in the filter, its label and kind from the field catalog."""

    key: str
    label: str
    kind: FieldKind


# Records of one school share their columns: a sample names them without reading 100,000 records.
FIELD_SAMPLE = 500
_IDENTITY_ROLES: tuple[IdentityRole, ...] = ("name", "phone", "email", "external_id")


async def filter_fields(session: AsyncSession, catalog: FieldCatalog) -> list[FieldChoice]:
    """The identity fields, then the columns the school's records hold, by label."""
    identity = [
        FieldChoice(role, concept.label if concept else humanize_column(role), concept.kind if concept else "text")
        for role in _IDENTITY_ROLES
        for concept in [catalog.identity_concept(role)]
    ]
    columns: dict[str, FieldChoice] = {}
    for attributes in await session.scalars(select(Student.attributes).limit(FIELD_SAMPLE)):
        for column in attributes:
            key = field_key(catalog, column)
            if key in _IDENTITY or key in columns or not key.isidentifier():
                continue
            concept = catalog.concept_for_column(column)
            columns[key] = FieldChoice(key, catalog.label_for(column), concept.kind if concept else "text")
    return identity + sorted(columns.values(), key=lambda choice: choice.label.lower())


async def load_fields(session: AsyncSession, claimed: Sequence[Claimed]) -> dict[int, Fields]:
    """The current record of each claimed recipient, as its message template sees it."""
    ids = {recipient.student_id for recipient in claimed if recipient.student_id is not None}
    people = {person.student_id: person.fields for person in await _people(session, ids)} if ids else {}
    fields = {}
    for recipient in claimed:
        own = people.get(recipient.student_id) if recipient.student_id else None
        fields[recipient.id] = own or {
            "phone": recipient.phone,
            "email": recipient.address if "@" in recipient.address else None,
        }
    return fields


async def list_campaigns(session: AsyncSession, limit: int, offset: int) -> Sequence[Campaign]:
    return await CampaignRepository.from_session(session).find_many(limit, offset)


async def get_campaign(session: AsyncSession, campaign_id: uuid.UUID, *, for_update: bool = False) -> Campaign:
    campaign = await CampaignRepository.from_session(session).get(campaign_id, for_update=for_update)
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id}", field="campaign_id")
    return campaign


# Which states each action may start from, and where it leads.
_TRANSITIONS = {
    "start": ({CampaignStatus.draft}, CampaignStatus.running),
    "pause": ({CampaignStatus.running}, CampaignStatus.paused),
    "resume": ({CampaignStatus.paused}, CampaignStatus.running),
    "cancel": ({CampaignStatus.draft, CampaignStatus.running, CampaignStatus.paused}, CampaignStatus.cancelled),
}


async def change_status(session: AsyncSession, campaign_id: uuid.UUID, action: str) -> Campaign:
    campaign = await get_campaign(session, campaign_id, for_update=True)
    allowed, target = _TRANSITIONS[action]
    if campaign.status not in allowed:
        raise Conflict(f"a {campaign.status} campaign cannot {action}", field="status")
    now = utcnow()
    campaign.status = target
    if action == "start":
        campaign.started_at = now
    if action == "cancel":
        campaign.finished_at = now
        await CampaignRepository.from_session(session).skip_unsent(campaign_id)
    await session.flush()
    return campaign


async def describe(session: AsyncSession, campaign: Campaign, rates: Mapping[CampaignChannel, float]) -> CampaignOut:
    repository = CampaignRepository.from_session(session)
    counts = {status: 0 for status in RecipientStatus}
    by_reason: dict[SkipReason, int] = {}
    delivered = read = 0
    for status, reason, delivery, count in await repository.counts(campaign.id):
        counts[RecipientStatus(status)] += count
        delivered += count if delivery in (DeliveryStatus.delivered, DeliveryStatus.read) else 0
        read += count if delivery == DeliveryStatus.read else 0
        if status == RecipientStatus.skipped and reason is not None:
            by_reason[SkipReason(reason)] = by_reason.get(SkipReason(reason), 0) + count
    progress = Progress(
        total=sum(counts.values()),
        pending=counts[RecipientStatus.pending],
        sending=counts[RecipientStatus.sending],
        sent=counts[RecipientStatus.sent],
        failed=counts[RecipientStatus.failed],
        skipped=counts[RecipientStatus.skipped],
        skipped_by_reason=by_reason,
        delivered=delivered,
        read=read,
    )
    now = utcnow()
    rate = 0.0
    if campaign.started_at is not None:
        window = min(RATE_WINDOW, now - as_utc(campaign.started_at))
        if window.total_seconds() > 0:
            rate = await repository.sent_since(campaign.id, now - window) / window.total_seconds()
    return CampaignOut(
        id=campaign.id,
        name=campaign.name,
        channel=campaign.channel,
        status=campaign.status,
        message=campaign.message,
        audience=campaign.audience,
        progress=progress,
        rate_per_s=round(rate, 2),
        eta_s=_eta(campaign, progress, rate, rates.get(CampaignChannel(campaign.channel), 0.0)),
        held_until=campaign.held_until,
        hold_reason=campaign.hold_reason,
        created_at=campaign.created_at,
        started_at=campaign.started_at,
        finished_at=campaign.finished_at,
    )


def _eta(campaign: Campaign, progress: Progress, rate: float, limit: float) -> float | None:
    remaining = progress.pending + progress.sending
    if remaining == 0:
        return 0.0
    if campaign.status not in (CampaignStatus.running, CampaignStatus.draft):
        return None
    # The measured pace once there is one; before, the configured limit.
    pace = rate if rate > 0 else limit
    if pace <= 0:
        return None
    held_s = (as_utc(campaign.held_until) - utcnow()).total_seconds() if campaign.held_until else 0.0
    return round(max(0.0, held_s) + remaining / pace, 1)


async def list_recipients(
    session: AsyncSession, campaign_id: uuid.UUID, status: RecipientStatus | None, after: int, limit: int
) -> RecipientPage:
    await get_campaign(session, campaign_id)
    rows = await CampaignRepository.from_session(session).page_recipients(campaign_id, status, after, limit)
    items = [RecipientOut.model_validate(row) for row in rows]
    return RecipientPage(items=items, next_after=items[-1].id if len(items) == limit else None)
