"""Send running campaigns: every worker leases batches of recipients from the ledger and sends them.

The ledger is the queue (decision 0010): a batch is leased in one statement
(`FOR UPDATE SKIP LOCKED` on PostgreSQL), so any number of workers on any
number of machines share a campaign; a worker that dies leaves leases that lapse
and are taken again. Each channel's send rate is a schedule in the database that
every worker books before sending, so the limit holds for all of them together.
A pause, hold or cancel stops the sending at once: the lease checks the campaign's
status in its own statement, and each send of a leased batch reads it again.
"""

import asyncio
import collections
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bedel.campaigns.audience import Fields
from bedel.campaigns.messages import CampaignMessage, Rendered, RenderFailed
from bedel.campaigns.models import CampaignChannel, RecipientStatus, SkipReason
from bedel.campaigns.outbox import Outbox
from bedel.campaigns.recording import record_sent
from bedel.campaigns.repository import CampaignRepository, Claimed, Settlement
from bedel.campaigns.service import load_fields
from bedel.channels.ports import SendFailed
from bedel.config import Settings
from bedel.consent.service import opted_out_phones
from bedel.db import utcnow
from bedel.ops.metrics import count_campaign_sends

log = structlog.get_logger()

POLL_S = 1.0
# Concurrent batches per process, and sends in flight per batch.
LANES = 2
IN_FLIGHT = 8
MAX_BATCH = 100
# A batch is booked for about this long of its channel's schedule, so workers take turns often.
BATCH_SPAN_S = 0.5
MAX_BACKOFF_S = 300.0
# Sends stop this far into a lease that was not renewed, leaving time to settle before it lapses.
LEASE_MARGIN = 0.6
# A batch where at least this share of sends failed for a passing reason is an outage, not bad luck.
OUTAGE_SHARE = 0.5
OUTAGE_MIN_FAILURES = 3


# How a settled recipient shows in the metrics: a pending one is being retried.
_OUTCOME = {
    RecipientStatus.sent: "sent",
    RecipientStatus.failed: "failed",
    RecipientStatus.pending: "retried",
    RecipientStatus.skipped: "skipped",
}


@dataclass(frozen=True)
class CampaignLimits:
    rates: Mapping[CampaignChannel, float]
    max_attempts: int
    retry_base_s: float
    lease_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> "CampaignLimits":
        return cls(
            rates={
                CampaignChannel.whatsapp_template: settings.campaign_rate_whatsapp,
                CampaignChannel.sms: settings.campaign_rate_sms,
                CampaignChannel.email: settings.campaign_rate_email,
            },
            max_attempts=settings.campaign_max_attempts,
            retry_base_s=settings.campaign_retry_base_s,
            lease_s=settings.campaign_lease_s,
        )


@dataclass
class _Lease:
    campaign_id: uuid.UUID
    token: uuid.UUID
    # How many recipients it holds: a renewal that finds fewer has lost some to another worker.
    size: int
    # No send starts after this: past it, the lease may have lapsed and another worker taken the recipient.
    deadline: float


class _Gate:
    """Lets a send start only if the campaign still runs, unheld, as read after that send got ready.

    A pause or hold answered before a send gets ready is therefore seen by it. Sends that get ready while
    a read is out share the next one, so a batch reads about once per send in flight, not once per send;
    once the campaign has stopped, the rest of the batch is given back without reading again.
    """

    def __init__(self, read: Callable[[], Awaitable[bool]]) -> None:
        self._read = read
        self._lock = asyncio.Lock()
        self._asked = 0
        # Sends up to this number asked before the latest read began, so its answer holds for them.
        self._answered = 0
        self._open = True

    async def open(self) -> bool:
        self._asked += 1
        number = self._asked
        async with self._lock:
            if self._open and number > self._answered:
                self._answered = self._asked
                self._open = await self._read()
        return self._open


@dataclass
class _Outcome:
    recipient: Claimed
    rendered: Rendered | None = None
    vendor_id: str | None = None
    failure: SendFailed | None = None
    unsent: bool = False


class CampaignRunner:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        outboxes: Mapping[CampaignChannel, Outbox],
        limits: CampaignLimits,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._outboxes = outboxes
        self._limits = limits
        self._clock = clock
        self._wakeup = asyncio.Event()
        self._lanes: list[asyncio.Task[None]] = []
        self._stopping = False
        self._rounds = 0

    @property
    def rates(self) -> Mapping[CampaignChannel, float]:
        return self._limits.rates

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self._lanes = [asyncio.create_task(self._lane()) for _ in range(LANES)]

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop leasing; batches being sent finish for `grace_s`, then are cancelled (their leases lapse)."""
        if not self._lanes:
            return
        self._stopping = True
        self._wakeup.set()
        _, pending = await asyncio.wait(self._lanes, timeout=grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _lane(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            try:
                worked = await self.run_once()
            except Exception:
                log.exception("campaign_batch_failed")
                worked = False
            if not worked:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), POLL_S)

    async def run_once(self) -> bool:
        """Lease and send one batch of a running campaign that has work; False when none had any.

        Each call starts from the next campaign in turn, so campaigns running at once share the workers.
        """
        async with self._sessionmaker() as session, session.begin():
            campaigns = await CampaignRepository.from_session(session).sendable()
        first = self._rounds % len(campaigns) if campaigns else 0
        self._rounds += 1
        for campaign_id, name in [*campaigns[first:], *campaigns[:first]]:
            channel = CampaignChannel(name)
            token = uuid.uuid4()
            size = self._batch_size(channel)
            # The turn on the channel's schedule comes first and the lease after it, so no lease runs out
            # while a worker waits for its turn.
            turn = await self._wait_for_turn(channel, size)
            async with self._sessionmaker() as session, session.begin():
                repository = CampaignRepository.from_session(session)
                # The lease runs from before the claim, so the margin is never overstated.
                claimed_at = self._clock()
                claimed = await repository.claim(campaign_id, size, timedelta(seconds=self._limits.lease_s), token)
                if not claimed:
                    if await repository.complete_if_done(campaign_id):
                        log.info("campaign_completed", campaign_id=str(campaign_id))
                    continue
                campaign = await repository.get(campaign_id)
                assert campaign is not None
                fields = await load_fields(session, claimed)
                opted_out = await opted_out_phones(session, [r.phone for r in claimed if r.phone])
            lease = _Lease(campaign_id, token, len(claimed), claimed_at + self._limits.lease_s * LEASE_MARGIN)
            message = CampaignMessage(channel, campaign.message)
            await self._send_batch(campaign_id, message, claimed, fields, opted_out, lease, campaign.outages, turn)
            return True
        return False

    async def _wait_for_turn(self, channel: CampaignChannel, size: int) -> float:
        """Book `size` sends on the channel's shared schedule and sleep until they may begin."""
        rate = self._limits.rates.get(channel, 0.0)
        if rate <= 0:
            return self._clock()
        async with self._sessionmaker() as session, session.begin():
            start = await CampaignRepository.from_session(session).reserve_sends(channel, size / rate, self._clock())
        await asyncio.sleep(max(0.0, start - self._clock()))
        return start

    def _batch_size(self, channel: CampaignChannel) -> int:
        rate = self._limits.rates.get(channel, 0.0)
        return MAX_BATCH if rate <= 0 else max(1, min(MAX_BATCH, math.ceil(rate * BATCH_SPAN_S)))

    async def _send_batch(
        self,
        campaign_id: uuid.UUID,
        message: CampaignMessage,
        claimed: Sequence[Claimed],
        fields: Mapping[int, Fields],
        opted_out: set[str],
        lease: "_Lease",
        outages: int,
        turn: float,
    ) -> None:
        settlements: list[Settlement] = []
        outcomes: list[_Outcome] = []
        for recipient in claimed:
            if recipient.phone in opted_out:
                settlements.append(Settlement(recipient.id, RecipientStatus.skipped, reason=SkipReason.opted_out))
                continue
            try:
                outcomes.append(_Outcome(recipient, message.render(fields.get(recipient.id, {}))))
            except RenderFailed as exc:
                settlements.append(Settlement(recipient.id, RecipientStatus.failed, error=str(exc)))
        keeper = asyncio.create_task(self._keep_lease(lease))
        gate = _Gate(lambda: self._may_send(campaign_id))
        try:
            await self._send_paced(message.channel, outcomes, lease, gate, turn)
        finally:
            keeper.cancel()
        token = lease.token
        outage = self._outage(outcomes, outages)
        settlements += self._settlements(outcomes, outage is not None)
        async with self._sessionmaker() as session, session.begin():
            repository = CampaignRepository.from_session(session)
            if outage is not None:
                until, reason = outage
                await repository.hold(campaign_id, until, reason)
                log.warning("campaign_held", campaign_id=str(campaign_id), until=until.isoformat(), reason=reason)
            elif outages and any(outcome.vendor_id for outcome in outcomes):
                await repository.clear_hold(campaign_id)
            await repository.settle(token, settlements)
            if any(settlement.status == RecipientStatus.pending for settlement in settlements):
                # A cancel while the batch was out found these recipients leased and left them alone.
                await repository.skip_unsent(campaign_id)
            await record_sent(session, [(o.recipient, o.rendered) for o in outcomes if o.vendor_id and o.rendered])
        outcomes_seen = collections.Counter(_OUTCOME[settlement.status] for settlement in settlements)
        count_campaign_sends(message.channel, outcomes_seen)

    async def _keep_lease(self, lease: "_Lease") -> None:
        """Renew the batch's lease while it is sent.

        A renewal that fails leaves the deadline where it was; one that finds rows already taken by
        another worker (this one stalled past its lease) stops every send not yet started.
        """
        ttl = timedelta(seconds=self._limits.lease_s)
        while True:
            await asyncio.sleep(self._limits.lease_s / 3)
            renewed_at = self._clock()
            try:
                async with self._sessionmaker() as session, session.begin():
                    renewed = await CampaignRepository.from_session(session).renew(lease.campaign_id, lease.token, ttl)
            except Exception:
                log.exception("campaign_lease_renewal_failed")
                continue
            if renewed < lease.size:
                log.warning("campaign_lease_lost", campaign_id=str(lease.campaign_id), kept=renewed, of=lease.size)
                lease.deadline = float("-inf")
                return
            lease.deadline = renewed_at + self._limits.lease_s * LEASE_MARGIN

    async def _may_send(self, campaign_id: uuid.UUID) -> bool:
        """Whether the campaign still runs, unheld; when the database cannot tell, no."""
        try:
            async with self._sessionmaker() as session, session.begin():
                return await CampaignRepository.from_session(session).may_send(campaign_id)
        except Exception:
            log.exception("campaign_status_read_failed", campaign_id=str(campaign_id))
            return False

    async def _send_paced(
        self, channel: CampaignChannel, outcomes: list[_Outcome], lease: "_Lease", gate: _Gate, start: float
    ) -> None:
        if not outcomes:
            return
        outbox = self._outboxes.get(channel)
        rate = self._limits.rates.get(channel, 0.0)
        # Spread evenly over the span booked from `start`, so batches of different workers never overlap.
        slots = asyncio.Semaphore(IN_FLIGHT)

        async def send(number: int, outcome: _Outcome) -> None:
            async with slots:
                due = start + number / rate if rate > 0 else start
                await asyncio.sleep(max(0.0, due - self._clock()))
                # A send that missed its moment by a whole span would crowd the next worker's turn; past
                # the deadline the lease may lapse and another worker take the recipient; and a paused, held
                # or cancelled campaign sends nothing more. Each way it waits.
                late = rate > 0 and self._clock() > due + BATCH_SPAN_S
                if late or self._clock() > lease.deadline or not await gate.open():
                    outcome.unsent = True
                    return
                assert outcome.rendered is not None
                try:
                    if outbox is None:
                        raise SendFailed(f"the {channel} channel is not configured", temporary=True)
                    outcome.vendor_id = await outbox.send(outcome.recipient.address, outcome.rendered)
                except SendFailed as exc:
                    outcome.failure = exc

        await asyncio.gather(*(send(number, outcome) for number, outcome in enumerate(outcomes)))

    def _settlements(self, outcomes: Sequence[_Outcome], outage: bool) -> list[Settlement]:
        now = utcnow()
        settlements = []
        for outcome in outcomes:
            recipient, failure = outcome.recipient, outcome.failure
            if outcome.vendor_id is not None:
                settlements.append(Settlement(recipient.id, RecipientStatus.sent, vendor_message_id=outcome.vendor_id))
            elif outcome.unsent:
                settlements.append(Settlement(recipient.id, RecipientStatus.pending, retry_at=now, refund_attempt=True))
            elif failure is not None and failure.temporary and outage:
                # The campaign waits for the provider; the recipient keeps all its attempts.
                settlements.append(
                    Settlement(recipient.id, RecipientStatus.pending, error=str(failure), refund_attempt=True)
                )
            elif failure is not None and failure.temporary and recipient.attempts < self._limits.max_attempts:
                retry_at = now + timedelta(seconds=self._backoff(recipient.attempts, failure.retry_after_s))
                settlements.append(
                    Settlement(recipient.id, RecipientStatus.pending, error=str(failure), retry_at=retry_at)
                )
            else:
                assert failure is not None
                settlements.append(Settlement(recipient.id, RecipientStatus.failed, error=str(failure)))
        return settlements

    def _backoff(self, attempts: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return retry_after_s
        delay = min(self._limits.retry_base_s * 2.0 ** (attempts - 1), MAX_BACKOFF_S)
        # Jitter spreads the retries of one failed batch instead of sending them back together.
        return delay * random.uniform(0.5, 1.0)  # noqa: S311

    def _outage(self, outcomes: Sequence[_Outcome], outages: int) -> tuple[datetime, str] | None:
        """When most of a batch failed for a passing reason: hold the campaign, longer each time in a row."""
        passing = [o.failure for o in outcomes if o.failure is not None and o.failure.temporary]
        if len(passing) < OUTAGE_MIN_FAILURES or len(passing) < OUTAGE_SHARE * len(outcomes):
            return None
        retry_after = [f.retry_after_s for f in passing if f.retry_after_s is not None]
        wait_s = max([self._limits.retry_base_s * 2.0**outages, *retry_after])
        return utcnow() + timedelta(seconds=min(wait_s, MAX_BACKOFF_S)), str(passing[0])
