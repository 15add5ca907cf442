import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, exists, func, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.db import Clock, conflict_insert, utcnow
from bedel.jobs.models import Job, JobStatus

_jobs = cast(Table, Job.__table__)


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    token: uuid.UUID


def _unfinished(table: Any) -> Any:
    # Literal values, not bind parameters: only then can the planner match the partial indexes' condition.
    return table.c.status.in_([literal_column(f"'{status}'") for status in (JobStatus.queued, JobStatus.running)])


def _ready(table: Any, now: Any) -> Any:
    """Due and queued, or running under a lease that lapsed (its worker died)."""
    return or_(
        and_(table.c.status == JobStatus.queued, table.c.run_after <= now),
        and_(table.c.status == JobStatus.running, table.c.leased_until < now),
    )


def _claim(pick: Any) -> Any:
    return (
        update(_jobs)
        .where(_jobs.c.id == pick.scalar_subquery(), _ready(_jobs, _NOW))
        .values(
            status=JobStatus.running,
            leased_until=bindparam("until", type_=_jobs.c.leased_until.type),
            lease_token=bindparam("token", type_=_jobs.c.lease_token.type),
            attempts=_jobs.c.attempts + 1,
            updated_at=_NOW,
        )
        .returning(_jobs.c.id, _jobs.c.kind, _jobs.c.payload, _jobs.c.attempts)
    )


# The claim's statements are built once, with the time as a parameter: every idle poll and every job runs
# them, and building the aliased subquery afresh cost more CPU than the rest of the job's bookkeeping.
_NOW = bindparam("now", type_=_jobs.c.run_after.type)
_candidate, _earlier = _jobs.alias("candidate"), _jobs.alias("earlier")
_PICK = (
    select(_candidate.c.id)
    .where(
        _unfinished(_candidate),
        _ready(_candidate, _NOW),
        ~exists().where(_earlier.c.key == _candidate.c.key, _earlier.c.id < _candidate.c.id, _unfinished(_earlier)),
    )
    .order_by(_candidate.c.id)
    .limit(1)
)
_CLAIM = _claim(_PICK)
_CLAIM_SKIP_LOCKED = _claim(_PICK.with_for_update(skip_locked=True))
_UNFINISHED = (
    select(_jobs.c.id, _jobs.c.key, _jobs.c.payload)
    .where(
        _jobs.c.key.in_(bindparam("keys", expanding=True)),
        _jobs.c.kind == bindparam("kind"),
        _jobs.c.id >= bindparam("from_id"),
        _unfinished(_jobs),
    )
    .order_by(_jobs.c.id)
)


class JobRepository:
    def __init__(self, session: AsyncSession, clock: Clock = utcnow) -> None:
        self.session = session
        self._clock = clock

    @classmethod
    def from_session(cls, session: AsyncSession, clock: Clock = utcnow) -> "JobRepository":
        return cls(session, clock)

    async def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        key: str | None = None,
        dedupe_key: str | None = None,
        delay: timedelta = timedelta(0),
    ) -> bool:
        """Add a job in the caller's transaction, to run after `delay`; False when `dedupe_key` was enqueued before."""
        now = self._clock()
        statement = conflict_insert(self.session, _jobs).values(
            kind=kind,
            key=key,
            dedupe_key=dedupe_key,
            payload=payload,
            status=JobStatus.queued,
            attempts=0,
            run_after=now + delay,
            created_at=now,
            updated_at=now,
        )
        if dedupe_key is not None:
            statement = statement.on_conflict_do_nothing(index_elements=["dedupe_key"])
        result = await self.session.execute(statement)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def claim(self, ttl: timedelta) -> ClaimedJob | None:
        """Lease the oldest ready job whose key has no earlier unfinished job, in one statement once one is ready."""
        now = self._clock()
        if await self.session.scalar(_PICK, {"now": now}) is None:
            # Nothing is ready: a read takes no lock, where an UPDATE that matches no row still takes
            # SQLite's one write lock, at every poll of every idle process.
            return None
        token = uuid.uuid4()
        # PostgreSQL's workers skip each other's rows instead of queueing behind them.
        claim = _CLAIM_SKIP_LOCKED if self.session.get_bind().dialect.name == "postgresql" else _CLAIM
        row = (await self.session.execute(claim, {"now": now, "until": now + ttl, "token": token})).first()
        return ClaimedJob(row.id, row.kind, row.payload, row.attempts, token) if row else None

    async def count_queued(self) -> int:
        return int(await self.session.scalar(select(func.count()).where(_jobs.c.status == JobStatus.queued)) or 0)

    async def renew(self, job: ClaimedJob, ttl: timedelta) -> None:
        await self.session.execute(
            update(_jobs)
            .where(_jobs.c.id == job.id, _jobs.c.lease_token == job.token)
            .values(leased_until=self._clock() + ttl)
        )

    async def finish(self, job: ClaimedJob, status: JobStatus, error: str | None = None) -> None:
        await self._settle(job, status=status, last_error=error)

    async def retry(self, job: ClaimedJob, delay: timedelta, error: str) -> None:
        await self._settle(job, status=JobStatus.queued, run_after=self._clock() + delay, last_error=error)

    async def postpone(self, job: ClaimedJob, run_after: datetime) -> None:
        """Queue the job again for later without counting this run as an attempt (it did not fail)."""
        await self._settle(job, status=JobStatus.queued, run_after=run_after, attempts=_jobs.c.attempts - 1)

    async def unfinished(self, keys: Collection[str], kind: str, from_id: int) -> list[tuple[int, str, dict[str, Any]]]:
        """The queued or running jobs of `kind` under any of `keys` from `from_id` on, oldest first:
        their ids, keys and payloads."""
        rows = await self.session.execute(_UNFINISHED, {"keys": list(keys), "kind": kind, "from_id": from_id})
        return [(row.id, row.key, row.payload) for row in rows]

    async def finish_queued(self, ids: list[int]) -> None:
        """Mark queued jobs done without running them: another job did their work (a burst's answer)."""
        if ids:
            await self.session.execute(
                update(_jobs)
                .where(_jobs.c.id.in_(ids), _jobs.c.status == JobStatus.queued)
                .values(status=JobStatus.done, updated_at=self._clock())
            )

    async def purge_finished(self, before: datetime, limit: int) -> int:
        """Delete up to `limit` jobs that finished (done or failed) before `before`, oldest first; how many went."""
        old = (
            select(_jobs.c.id)
            .where(_jobs.c.status.in_([JobStatus.done, JobStatus.failed]), _jobs.c.updated_at < before)
            .order_by(_jobs.c.id)
            .limit(limit)
        )
        result = await self.session.execute(delete(_jobs).where(_jobs.c.id.in_(old)))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def _settle(self, job: ClaimedJob, **values: Any) -> None:
        # Only the lease holder settles: a worker that lost its lease leaves the job to its new owner.
        await self.session.execute(
            update(_jobs)
            .where(_jobs.c.id == job.id, _jobs.c.lease_token == job.token)
            .values(leased_until=None, lease_token=None, updated_at=self._clock(), **values)
        )
