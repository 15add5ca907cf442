import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, case, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.campaigns.models import (
    Campaign,
    CampaignRecipient,
    CampaignStatus,
    RecipientStatus,
    SendRate,
    SkipReason,
)
from bedel.db import conflict_insert, utcnow
from bedel.delivery import DeliveryStatus, delivery_moves_forward

_recipients = cast(Table, CampaignRecipient.__table__)
_rates = cast(Table, SendRate.__table__)
CHUNK_SIZE = 1000


@dataclass(frozen=True)
class Claimed:
    id: int
    address: str
    phone: str | None
    student_id: uuid.UUID | None
    attempts: int


@dataclass(frozen=True)
class Settlement:
    """How one claimed recipient ended: sent, failed, retried later, or given back untouched."""

    id: int
    status: RecipientStatus
    vendor_message_id: str | None = None
    error: str | None = None
    reason: SkipReason | None = None
    retry_at: datetime | None = None
    # A retry caused by an outage does not use up one of the recipient's attempts.
    refund_attempt: bool = False


_SETTLE = (
    update(_recipients)
    .where(_recipients.c.id == bindparam("b_id"), _recipients.c.lease_token == bindparam("b_token"))
    .values(
        status=bindparam("b_status"),
        vendor_message_id=bindparam("b_vendor"),
        error=bindparam("b_error"),
        reason=bindparam("b_reason"),
        sent_at=bindparam("b_sent_at"),
        delivery_status=bindparam("b_delivery"),
        next_attempt_at=bindparam("b_retry_at"),
        attempts=_recipients.c.attempts - bindparam("b_refund"),
        leased_until=None,
        lease_token=None,
    )
)


def _sending(now: datetime) -> Any:
    """The campaign runs and no outage holds it: only then may its recipients be leased or sent (decision 0010)."""
    return and_(
        Campaign.status == CampaignStatus.running, or_(Campaign.held_until.is_(None), Campaign.held_until <= now)
    )


def _ready(now: datetime) -> Any:
    """Due and pending, or leased by a worker whose lease lapsed (it died mid-batch)."""
    return or_(
        and_(_recipients.c.status == RecipientStatus.pending, _recipients.c.next_attempt_at <= now),
        and_(_recipients.c.status == RecipientStatus.sending, _recipients.c.leased_until < now),
    )


class CampaignRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "CampaignRepository":
        return cls(session)

    async def get(self, campaign_id: uuid.UUID, *, for_update: bool = False) -> Campaign | None:
        query = select(Campaign).where(Campaign.id == campaign_id)
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(query.execution_options(populate_existing=True))

    async def find_many(self, limit: int, offset: int) -> Sequence[Campaign]:
        query = select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id).limit(limit).offset(offset)
        return (await self.session.scalars(query)).all()

    def add(self, campaign: Campaign) -> None:
        self.session.add(campaign)

    async def add_recipients(self, rows: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(rows), CHUNK_SIZE):
            await self.session.execute(_recipients.insert(), list(rows[start : start + CHUNK_SIZE]))

    async def counts(self, campaign_id: uuid.UUID) -> list[tuple[str, str | None, str | None, int]]:
        """(status, skip reason, delivery status, how many) over the campaign's ledger."""
        columns = (_recipients.c.status, _recipients.c.reason, _recipients.c.delivery_status)
        rows = await self.session.execute(
            select(*columns, func.count()).where(_recipients.c.campaign_id == campaign_id).group_by(*columns)
        )
        return [(status, reason, delivery, count) for status, reason, delivery, count in rows]

    async def sent_since(self, campaign_id: uuid.UUID, since: datetime) -> int:
        query = select(func.count()).where(_recipients.c.campaign_id == campaign_id, _recipients.c.sent_at >= since)
        return int(await self.session.scalar(query) or 0)

    async def page_recipients(
        self, campaign_id: uuid.UUID, status: RecipientStatus | None, after: int, limit: int
    ) -> Sequence[CampaignRecipient]:
        query = (
            select(CampaignRecipient)
            .where(CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.id > after)
            .order_by(CampaignRecipient.id)
            .limit(limit)
        )
        if status is not None:
            query = query.where(CampaignRecipient.status == status)
        return (await self.session.scalars(query)).all()

    async def sendable(self) -> Sequence[tuple[uuid.UUID, str]]:
        """Running campaigns not held by an outage, oldest first, with their channel."""
        now = utcnow()
        rows = await self.session.execute(
            select(Campaign.id, Campaign.channel).where(_sending(now)).order_by(Campaign.started_at)
        )
        return [(campaign_id, channel) for campaign_id, channel in rows]

    async def may_send(self, campaign_id: uuid.UUID) -> bool:
        """Whether the campaign still runs, unheld: read before each send of a leased batch."""
        return bool(await self.session.scalar(select(exists().where(Campaign.id == campaign_id, _sending(utcnow())))))

    async def claim(self, campaign_id: uuid.UUID, limit: int, ttl: timedelta, token: uuid.UUID) -> list[Claimed]:
        """Lease up to `limit` ready recipients of a running campaign, in one statement.

        The campaign's status is checked in the statement itself, not before it: a worker waits for its
        turn between finding the campaign and leasing, and a pause or hold answered meanwhile must hold.
        """
        now = utcnow()
        pick = (
            select(_recipients.c.id)
            .where(
                _recipients.c.campaign_id == campaign_id,
                _ready(now),
                exists().where(Campaign.id == campaign_id, _sending(now)),
            )
            .limit(limit)
        )
        chosen = _recipients.c.id.in_(pick.scalar_subquery())
        if self.session.get_bind().dialect.name == "postgresql":
            # Workers skip each other's rows instead of queueing behind them. MATERIALIZED runs the pick
            # once: as a plain IN subquery the planner may rescan it per row, and with SKIP LOCKED each
            # rescan finds other rows, so one claim took far more than `limit`.
            picked = pick.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
            chosen = _recipients.c.id.in_(select(picked.c.id))
        rows = await self.session.execute(
            update(_recipients)
            .where(chosen, _ready(now))
            .values(
                status=RecipientStatus.sending,
                leased_until=now + ttl,
                lease_token=token,
                attempts=_recipients.c.attempts + 1,
            )
            .returning(
                _recipients.c.id,
                _recipients.c.address,
                _recipients.c.phone,
                _recipients.c.student_id,
                _recipients.c.attempts,
            )
        )
        return [Claimed(*row) for row in rows]

    async def renew(self, campaign_id: uuid.UUID, token: uuid.UUID, ttl: timedelta) -> int:
        """Extend a batch's lease; return how many of its recipients it still holds."""
        result = await self.session.execute(
            update(_recipients)
            .where(
                _recipients.c.campaign_id == campaign_id,
                _recipients.c.status == RecipientStatus.sending,
                _recipients.c.lease_token == token,
            )
            .values(leased_until=utcnow() + ttl)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def settle(self, token: uuid.UUID, settlements: Sequence[Settlement]) -> None:
        """Record each outcome; only the lease holder's word counts, so a late worker changes nothing."""
        if not settlements:
            return
        now = utcnow()
        await self.session.execute(
            _SETTLE,
            [
                {
                    "b_id": item.id,
                    "b_token": token,
                    "b_status": item.status,
                    "b_vendor": item.vendor_message_id,
                    "b_error": item.error,
                    "b_reason": item.reason,
                    "b_sent_at": now if item.status == RecipientStatus.sent else None,
                    "b_delivery": DeliveryStatus.sent if item.status == RecipientStatus.sent else None,
                    "b_retry_at": item.retry_at or now,
                    "b_refund": 1 if item.refund_attempt else 0,
                }
                for item in settlements
            ],
        )

    async def apply_receipt(
        self, vendor_message_id: str, status: DeliveryStatus, code: str | None, error: str | None
    ) -> bool:
        """Move the recipient the vendor id names forward to `status`; a failure shows on it as `failed`."""
        values: dict[str, Any] = {"delivery_status": status}
        if status == DeliveryStatus.failed:
            values |= {"status": RecipientStatus.failed, "delivery_error_code": code, "error": error}
        elif status in (DeliveryStatus.delivered, DeliveryStatus.read):
            # Arrival proves an earlier failure receipt wrong.
            values |= {"status": RecipientStatus.sent}
        result = await self.session.execute(
            update(_recipients)
            .where(
                _recipients.c.vendor_message_id == vendor_message_id,
                delivery_moves_forward(_recipients.c.delivery_status, status),
            )
            .values(**values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def send_again(self, vendor_message_id: str, code: str, error: str, delay: timedelta) -> bool:
        """The vendor throttled a sent message (too fast, or too many to one student): send it again later.

        A campaign that had completed runs again for it.
        """
        now = utcnow()
        campaign_id = await self.session.scalar(
            update(_recipients)
            .where(
                _recipients.c.vendor_message_id == vendor_message_id,
                _recipients.c.status == RecipientStatus.sent,
                delivery_moves_forward(_recipients.c.delivery_status, DeliveryStatus.failed),
            )
            .values(
                status=RecipientStatus.pending,
                next_attempt_at=now + delay,
                vendor_message_id=None,
                sent_at=None,
                delivery_status=None,
                delivery_error_code=code,
                error=error,
            )
            .returning(_recipients.c.campaign_id)
        )
        if campaign_id is None:
            return False
        await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.completed)
            .values(status=CampaignStatus.running, finished_at=None, updated_at=now)
        )
        return True

    async def complete_if_done(self, campaign_id: uuid.UUID) -> bool:
        unfinished = exists().where(
            _recipients.c.campaign_id == campaign_id,
            _recipients.c.status.in_([RecipientStatus.pending, RecipientStatus.sending]),
        )
        now = utcnow()
        result = await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.running, ~unfinished)
            .values(status=CampaignStatus.completed, finished_at=now, updated_at=now)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def hold(self, campaign_id: uuid.UUID, until: datetime, reason: str) -> None:
        await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(held_until=until, hold_reason=reason, outages=Campaign.outages + 1, updated_at=utcnow())
        )

    async def clear_hold(self, campaign_id: uuid.UUID) -> None:
        await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.outages > 0)
            .values(held_until=None, hold_reason=None, outages=0, updated_at=utcnow())
        )

    async def skip_unsent(self, campaign_id: uuid.UUID) -> None:
        """If the campaign is cancelled, whatever is not sent and not being sent right now is skipped.

        Run when it is cancelled, and again when a batch it found leased gives recipients back.
        """
        now = utcnow()
        cancelled = exists().where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.cancelled)
        await self.session.execute(
            update(_recipients)
            .where(
                _recipients.c.campaign_id == campaign_id,
                or_(_recipients.c.status == RecipientStatus.pending, _ready(now)),
                cancelled,
            )
            .values(status=RecipientStatus.skipped, reason=SkipReason.cancelled, leased_until=None, lease_token=None)
        )

    async def purge_finished(self, before: datetime, limit: int) -> int:
        """Delete up to `limit` ledger rows of campaigns that finished before `before`, then such campaigns
        left without rows; how many rows went. A running, paused or draft campaign is never touched."""
        campaigns = cast(Table, Campaign.__table__)
        finished = select(campaigns.c.id).where(
            campaigns.c.status.in_([CampaignStatus.completed, CampaignStatus.cancelled]),
            campaigns.c.finished_at < before,
        )
        rows = select(_recipients.c.id).where(_recipients.c.campaign_id.in_(finished)).limit(limit)
        result = await self.session.execute(delete(_recipients).where(_recipients.c.id.in_(rows)))
        if deleted := int(result.rowcount):  # type: ignore[attr-defined]
            return deleted
        empty = finished.where(~exists().where(_recipients.c.campaign_id == campaigns.c.id)).limit(limit)
        result = await self.session.execute(delete(campaigns).where(campaigns.c.id.in_(empty)))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def reserve_sends(self, channel: str, span_s: float, now_s: float) -> float:
        """Book `span_s` seconds of the channel's shared schedule; return when the booked span starts."""
        await self.session.execute(
            conflict_insert(self.session, SendRate)
            .values(channel=channel, next_free_s=now_s)
            .on_conflict_do_nothing(index_elements=["channel"])
        )
        start = case((_rates.c.next_free_s > now_s, _rates.c.next_free_s), else_=now_s)
        booked_until = await self.session.scalar(
            update(_rates)
            .where(_rates.c.channel == channel)
            .values(next_free_s=start + span_s)
            .returning(_rates.c.next_free_s)
        )
        assert booked_until is not None
        return float(booked_until) - span_s
