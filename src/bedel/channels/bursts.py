"""Bursts: the messages one phone writes in a row, answered as one turn.

Students send "hola", "una pregunta", "¿cuánto debo?" as three messages in four
seconds. The answer job of the first (the leader) is postponed in the jobs table,
not slept on, until the phone has been quiet for the window, or at most
`BURST_CAP` after the first message; later answer jobs of the phone queue behind
it (one key, one at a time), so when it runs it answers their texts too and
finishes them. Everything lives in the database, so it holds across workers.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bedel.channels.jobs import AnswerJob, QueuedAnswer
from bedel.consent.service import subscription_request
from bedel.jobs.repository import JobRepository

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


async def _queued_after(session: AsyncSession, job: AnswerJob, after_id: int) -> list[QueuedAnswer]:
    """The phone's answer jobs queued (or running) after `after_id`, oldest first."""
    rows = await JobRepository.from_session(session).unfinished(job.key, job.kind, after_id + 1)
    return [QueuedAnswer(job_id, AnswerJob.from_payload(payload)) for job_id, payload in rows]


async def find_burst(session: AsyncSession, leader: QueuedAnswer) -> Burst:
    """The leader and the text messages queued right behind it, up to the first that does not join."""
    burst = Burst([leader])
    for follower in await _queued_after(session, leader.job, leader.id):
        if not _joins(follower.job, burst.cutoff):
            break
        burst.answers.append(follower)
    return burst


async def interrupted(session: AsyncSession, burst: Burst) -> bool:
    """Whether a text that belongs to this burst arrived after the burst was gathered."""
    later = await _queued_after(session, burst.answers[0].job, burst.answers[-1].id)
    return bool(later) and _joins(later[0].job, burst.cutoff)
