"""The chat package's background job: keeping each finished day's dashboard figures, so that no view of
the dashboard reads a past day from its messages (at 10,000 messages a day that took seconds)."""

from datetime import date, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bedel.chat.activity import ActivityRepository, settled_day
from bedel.db import Clock
from bedel.jobs.runner import Handler, JobContext

log = structlog.get_logger()

# How often KEEP_JOB (named in chat/activity.py) runs: a day is kept within this long of being settled
# (ten minutes after midnight, UTC).
KEEP_EVERY = timedelta(minutes=10)


async def keep_finished_days(sessionmaker: async_sessionmaker[AsyncSession], clock: Clock) -> list[date]:
    """Keep the figures of every settled day since the first message that are not kept yet (all of them
    the first time, on a database that has months of messages), each day in its own short transaction;
    the days kept, oldest first."""
    async with sessionmaker() as session:
        days = await ActivityRepository.from_session(session).days_to_keep(settled_day(clock()))
    for day in days:
        async with sessionmaker() as session, session.begin():
            await ActivityRepository.from_session(session).keep_days([day])
    if days:
        log.info("activity_kept", days=len(days), first=days[0].isoformat(), last=days[-1].isoformat())
    return days


def keep_handler(sessionmaker: async_sessionmaker[AsyncSession], clock: Clock) -> Handler:
    async def keep(_: JobContext) -> None:
        await keep_finished_days(sessionmaker, clock)

    return keep
