"""Run jobs from the `jobs` table: in the API process by default, or in `bedel worker` processes.

The table is the queue (decision 0007): a worker leases one ready job at a time
per free slot, renews the lease while the job runs, and settles it as done,
queued again with backoff, postponed (the job asked to run later, decision
0013), or failed. Starting is the recovery sweep: a job
accepted before a crash is queued (or running under a lapsed lease) and runs again.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bedel.db import Clock, utcnow
from bedel.jobs.models import JobStatus
from bedel.jobs.repository import ClaimedJob, JobRepository
from bedel.ops.metrics import JOBS_QUEUED, count_job

log = structlog.get_logger()

POLL_S = 1.0
# How often a runner looks whether a periodic job is due.
SCHEDULE_CHECK_S = 60.0
MAX_BACKOFF_S = 300.0


class RetryLater(Exception):
    """A temporary failure: run the job again after `delay_s` (or the runner's backoff)."""

    def __init__(self, message: str, delay_s: float | None = None) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class JobFailed(Exception):
    """A permanent failure: the job is marked failed and never retried."""


class Postpone(Exception):
    """Not yet: queue the job again to run at `until`, without counting an attempt."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"postponed until {until.isoformat()}")
        self.until = until


@dataclass(frozen=True)
class JobContext:
    id: int
    payload: dict[str, Any]
    attempt: int
    last_attempt: bool


Handler = Callable[[JobContext], Awaitable[None]]


class JobRunner:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        handlers: dict[str, Handler],
        *,
        concurrency: int,
        max_attempts: int,
        retry_base_s: float,
        lease: timedelta,
        clock: Clock = utcnow,
        periodic: Mapping[str, timedelta] | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._handlers = handlers
        self._slots = asyncio.Semaphore(concurrency)
        self._max_attempts = max_attempts
        self._retry_base_s = retry_base_s
        self._lease = lease
        self._wakeup = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._depth_due = 0.0
        self._periodic = dict(periodic or {})
        self._schedule_due = datetime.min.replace(tzinfo=UTC)

    def wake(self) -> None:
        """Look for work now rather than at the next poll (call after the enqueueing commit)."""
        self._wakeup.set()

    def start(self) -> None:
        self._loop = asyncio.create_task(self._claim_loop())

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop claiming, let running jobs finish for `grace_s`, then cancel them (their leases lapse)."""
        if self._loop is None:
            return
        # The loop ends between claims rather than being cancelled inside one.
        self._stopping = True
        self._wakeup.set()
        tasks = {self._loop, *self._running}
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _claim_loop(self) -> None:
        while not self._stopping:
            await self._slots.acquire()
            self._wakeup.clear()
            job = None if self._stopping else await self._claim()
            if job is None:
                self._slots.release()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), POLL_S)
                continue
            task = asyncio.create_task(self._run(job))
            self._running.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slots.release()
        # A finished job may unblock the next one of its key.
        self._wakeup.set()

    async def _claim(self) -> ClaimedJob | None:
        try:
            async with self._sessionmaker() as session, session.begin():
                jobs = JobRepository.from_session(session, self._clock)
                if time.monotonic() >= self._depth_due:
                    # The queue's depth, measured at most once a poll interval, before any write:
                    # on SQLite the write lock is then held from the claim to the commit only.
                    JOBS_QUEUED.set(await jobs.count_queued())
                    self._depth_due = time.monotonic() + POLL_S
                await self._schedule(jobs)
                return await jobs.claim(self._lease)
        except Exception:
            log.exception("job_claim_failed")
            return None

    async def _schedule(self, jobs: JobRepository) -> None:
        """Enqueue each periodic job once per period: its dedupe key names the period, so of all the
        runners of every replica and worker, the first to look enqueues it and the others add nothing."""
        now = self._clock()
        if not self._periodic or now < self._schedule_due:
            return
        self._schedule_due = now + timedelta(seconds=SCHEDULE_CHECK_S)
        for kind, every in self._periodic.items():
            period = int(now.timestamp() // every.total_seconds())
            await jobs.enqueue(kind, {}, key=kind, dedupe_key=f"{kind}:{period}")

    async def _run(self, job: ClaimedJob) -> None:
        handler = self._handlers.get(job.kind)
        context = JobContext(job.id, job.payload, job.attempts, job.attempts >= self._max_attempts)
        keeper = asyncio.create_task(self._keep_lease(job))
        status, error, delay, until = JobStatus.done, None, None, None
        try:
            if handler is None:
                raise JobFailed(f"no handler for job kind {job.kind!r}")
            await handler(context)
        except Postpone as exc:
            until = exc.until
        except JobFailed as exc:
            status, error = JobStatus.failed, str(exc)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if context.last_attempt:
                status = JobStatus.failed
            else:
                status = JobStatus.queued
                backoff = min(self._retry_base_s * 2 ** (job.attempts - 1), MAX_BACKOFF_S)
                delay = exc.delay_s if isinstance(exc, RetryLater) and exc.delay_s is not None else backoff
        finally:
            keeper.cancel()
        if until is not None:
            await self._postpone(job, until)
            return
        await self._settle(job, status, error, delay)

    async def _postpone(self, job: ClaimedJob, until: datetime) -> None:
        count_job(job.kind, "postponed")
        try:
            async with self._sessionmaker() as session, session.begin():
                await JobRepository.from_session(session, self._clock).postpone(job, until)
        except Exception:
            log.exception("job_settle_failed", job_id=job.id)
            return
        # Look again when it is due rather than at the next poll after.
        asyncio.get_running_loop().call_later(max((until - self._clock()).total_seconds(), 0), self.wake)

    async def _settle(self, job: ClaimedJob, status: JobStatus, error: str | None, delay: float | None) -> None:
        log_event = {JobStatus.done: "job_done", JobStatus.queued: "job_retry", JobStatus.failed: "job_failed"}[status]
        count_job(job.kind, "retried" if delay is not None else status.value)
        (log.warning if error else log.info)(log_event, job_id=job.id, kind=job.kind, attempt=job.attempts, error=error)
        try:
            async with self._sessionmaker() as session, session.begin():
                jobs = JobRepository.from_session(session, self._clock)
                if delay is not None:
                    await jobs.retry(job, timedelta(seconds=delay), error or "")
                else:
                    await jobs.finish(job, status, error)
        except Exception:
            # The lease lapses and another worker runs the job again.
            log.exception("job_settle_failed", job_id=job.id)

    async def _keep_lease(self, job: ClaimedJob) -> None:
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            try:
                async with self._sessionmaker() as session, session.begin():
                    await JobRepository.from_session(session, self._clock).renew(job, self._lease)
            except Exception:
                log.exception("job_lease_renewal_failed", job_id=job.id)
