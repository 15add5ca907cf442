"""Bursts: the messages one phone writes in a row, answered as one turn.

Students send "hola", "una pregunta", "¿cuánto debo?" as three messages in four
seconds. The answer job of the first (the leader) is postponed in the jobs table,
not slept on, until the phone has been quiet for the window, or at most
`BURST_CAP` after the first message; later answer jobs of the phone queue behind
it (one key, one at a time), so when it runs it answers their texts too and
finishes them. Everything lives in the database, so it holds across workers.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bedel.channels.service import ANSWER_JOB
from bedel.consent.service import subscription_request
from bedel.jobs.repository import JobRepository

BURST_CAP = timedelta(seconds=10)
_LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def received_at(payload: dict[str, Any]) -> datetime:
    # Jobs ledgered before bursts existed carry no arrival time: they are long quiet.
    value = payload.get("received_at")
    return datetime.fromisoformat(value) if value else _LONG_AGO


@dataclass(frozen=True)
class Burst:
    """The leader's job and payload first, then its followers', in arrival order."""

    jobs: list[tuple[int, dict[str, Any]]]

    @property
    def cutoff(self) -> datetime:
        """Messages arriving later start the next burst."""
        return received_at(self.jobs[0][1]) + BURST_CAP

    @property
    def followers(self) -> list[int]:
        return [job_id for job_id, _ in self.jobs[1:]]

    def quiet_at(self, window: timedelta) -> datetime:
        last = max(received_at(payload) for _, payload in self.jobs)
        return min(last + window, self.cutoff)


def _joins(payload: dict[str, Any], cutoff: datetime) -> bool:
    # Only text joins a burst: a voice note, a file or a tapped button (whose title comes as its text) is
    # answered on its own, in its turn, and so is "BAJA" / "ALTA", which is never read as part of a question.
    text = payload["text"]
    return (
        text is not None
        and not payload.get("button")
        and subscription_request(text) is None
        and received_at(payload) <= cutoff
    )


async def find_burst(session: AsyncSession, job_id: int, payload: dict[str, Any]) -> Burst:
    """The leader and the text messages queued right behind it, up to the first that does not join."""
    burst = Burst([(job_id, payload)])
    later = await JobRepository.from_session(session).unfinished(f"answer:{payload['phone']}", ANSWER_JOB, job_id + 1)
    for follower in later:
        if not _joins(follower[1], burst.cutoff):
            break
        burst.jobs.append(follower)
    return burst


async def interrupted(session: AsyncSession, burst: Burst) -> bool:
    """Whether a text that belongs to this burst arrived after the burst was gathered."""
    leader = burst.jobs[0][1]
    later = await JobRepository.from_session(session).unfinished(
        f"answer:{leader['phone']}", ANSWER_JOB, burst.jobs[-1][0] + 1
    )
    return bool(later) and _joins(later[0][1], burst.cutoff)
