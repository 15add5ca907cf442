"""Bursts: the messages one phone writes in a row, answered as one turn.

Students send "hola", "una pregunta", "¿cuánto debo?" as three messages in four
seconds. The answer job of the first (the leader) is postponed in the jobs table,
not slept on, until the phone has been quiet for the window, or at most
`BURST_CAP` after the first message; later answer jobs of the phone queue behind
it (one key, one at a time), so when it runs it answers their texts too and
finishes them. Everything lives in the database, so it holds across workers.
"""

import asyncio
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bedel.channels.jobs import AnswerJob, QueuedAnswer
from bedel.consent.service import subscription_request
from bedel.jobs.repository import JobRepository

log = structlog.get_logger()

BURST_CAP = timedelta(seconds=10)


@dataclass(frozen=True)
class Burst:
    """The leader first, then its followers, in arrival order."""

    answers: list[QueuedAnswer]

    @property
    def cutoff(self) -> datetime:
        """Messages arriving later start the next burst."""
        return self.answers[0].job.received_at + BURST_CAP

    @property
    def followers(self) -> list[QueuedAnswer]:
        return self.answers[1:]

    def quiet_at(self, window: timedelta) -> datetime:
        last = max(queued.job.received_at for queued in self.answers)
        return min(last + window, self.cutoff)


def _joins(job: AnswerJob, cutoff: datetime) -> bool:
    # Only text joins a burst: a voice note, a file or a tapped button (whose title comes as its text) is
    # answered on its own, in its turn, and so is "BAJA" / "ALTA", which is never read as part of a question.
    return (
        job.text is not None and not job.button and subscription_request(job.text) is None and job.received_at <= cutoff
    )


async def _queued_after(session: AsyncSession, keys: Collection[str], after_id: int) -> list[QueuedAnswer]:
    """The answer jobs of these keys' phones queued (or running) after `after_id`, oldest first."""
    rows = await JobRepository.from_session(session).unfinished(keys, AnswerJob.kind, after_id + 1)
    return [QueuedAnswer(job_id, AnswerJob.from_payload(payload)) for job_id, _, payload in rows]


async def find_burst(session: AsyncSession, leader: QueuedAnswer) -> Burst:
    """The leader and the text messages queued right behind it, up to the first that does not join."""
    burst = Burst([leader])
    for follower in await _queued_after(session, [leader.job.key], leader.id):
        if not _joins(follower.job, burst.cutoff):
            break
        burst.answers.append(follower)
    return burst


class InterruptWatch:
    """Tells each burst being answered when a newer text of it arrives, so its answer starts again.

    Any process may accept that text, so the queue is read: once every `poll_s` while this process
    answers any burst, in one statement for all of them, however many it answers at once.
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], poll_s: float) -> None:
        self._sessionmaker = sessionmaker
        self._poll_s = poll_s
        self._watched: dict[asyncio.Future[None], Burst] = {}
        self._looking: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def watching(self, burst: Burst) -> AsyncIterator[asyncio.Future[None]]:
        """A future done once a text that belongs to `burst` arrived after the burst was gathered."""
        newer = asyncio.get_running_loop().create_future()
        self._watched[newer] = burst
        if self._looking is None:
            self._looking = asyncio.create_task(self._look_while_watched())
        try:
            yield newer
        finally:
            del self._watched[newer]
            newer.cancel()
            if not self._watched and self._looking is not None:
                self._looking.cancel()
                self._looking = None

    async def _look_while_watched(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                await self._look()
            except Exception:
                # The answers go on; a text missed here gets an answer of its own after them.
                log.exception("channel_interrupt_watch_failed")

    async def _look(self) -> None:
        watched = dict(self._watched)
        keys = {burst.answers[0].job.key for burst in watched.values()}
        after_id = min(burst.answers[-1].id for burst in watched.values())
        async with self._sessionmaker() as session:
            later = await _queued_after(session, keys, after_id)
        for newer, burst in watched.items():
            key, last_id = burst.answers[0].job.key, burst.answers[-1].id
            first = next((queued for queued in later if queued.job.key == key and queued.id > last_id), None)
            if first is not None and _joins(first.job, burst.cutoff) and not newer.done():
                newer.set_result(None)
