"""Retention: what is kept only so long (BEDEL_RETENTION_DAYS, BEDEL_JOB_RETENTION_DAYS,
BEDEL_CAMPAIGN_RETENTION_DAYS) is deleted by an hourly job.

Business rules: a conversation goes whole, with its attachments (their bytes live in the
database, decision 0013), once its last message is older than the limit, and never while a turn
is answering it: a handoff a person is still in keeps the conversation alive. A job goes once it
finished (done or failed) that long ago; a campaign's ledger once the campaign completed or was
cancelled that long ago. Nothing newer than a limit is touched. Deletion runs in batches of
`BATCH` rows, each statement in its own short transaction, so no table is locked for long and a
purge interrupted halfway simply goes on at the next run. Students' daily token counts (they name
a phone) go after `TOKEN_DAYS`, whatever the settings: the budgets need only this month's.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bedel.budgets.service import forget_daily_usage
from bedel.campaigns.repository import CampaignRepository
from bedel.chat.threads import purge_conversations
from bedel.config import Settings
from bedel.db import Clock, utcnow
from bedel.jobs.repository import JobRepository
from bedel.jobs.runner import JobContext

log = structlog.get_logger()

BATCH = 500
TOKEN_DAYS = 62
PURGE_JOB = "retention.purge"
PURGE_EVERY = timedelta(hours=1)

Batch = Callable[[AsyncSession, datetime], Awaitable[int]]


@dataclass(frozen=True)
class RetentionPolicy:
    """Days each kind of data is kept; 0 keeps it for ever."""

    conversations_days: int = 0
    jobs_days: int = 0
    campaigns_days: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> "RetentionPolicy":
        return cls(settings.retention_days, settings.job_retention_days, settings.campaign_retention_days)

    @property
    def purges(self) -> bool:
        return bool(self.conversations_days or self.jobs_days or self.campaigns_days)


class Retention:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], policy: RetentionPolicy, clock: Clock = utcnow
    ) -> None:
        self._sessionmaker = sessionmaker
        self._policy = policy
        self._clock = clock

    async def run(self, _: JobContext) -> None:
        """The periodic job's handler."""
        await self.purge()

    async def purge(self) -> dict[str, int]:
        """Delete everything past its limit, batch by batch; how many rows of each kind went."""
        now = self._clock()

        async def conversations(session: AsyncSession, before: datetime) -> int:
            return await purge_conversations(session, before, now, BATCH)

        async def jobs(session: AsyncSession, before: datetime) -> int:
            return await JobRepository.from_session(session).purge_finished(before, BATCH)

        async def campaigns(session: AsyncSession, before: datetime) -> int:
            return await CampaignRepository.from_session(session).purge_finished(before, BATCH)

        async def token_counts(session: AsyncSession, before: datetime) -> int:
            return await forget_daily_usage(session, before, BATCH)

        kinds: dict[str, tuple[int, Batch]] = {
            "conversations": (self._policy.conversations_days, conversations),
            "jobs": (self._policy.jobs_days, jobs),
            "campaigns": (self._policy.campaigns_days, campaigns),
            "token_counts": (TOKEN_DAYS, token_counts),
        }
        purged = {}
        for kind, (days, batch) in kinds.items():
            if days:
                purged[kind] = await self._drain(batch, now - timedelta(days=days))
        log.info("retention_purged", **purged)
        return purged

    async def _drain(self, batch: Batch, before: datetime) -> int:
        total = 0
        while True:
            async with self._sessionmaker() as session, session.begin():
                deleted = await batch(session, before)
            total += deleted
            if not deleted:
                return total
