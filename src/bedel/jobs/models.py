import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from bedel.db import Base, utcnow


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


UNFINISHED = "status IN ('queued', 'running')"


class Job(Base):
    """One unit of background work, and its ledger entry: a job row is never lost, only finished.

    Jobs that share a `key` run one at a time in `id` order (one conversation's
    replies); jobs with different keys run in parallel. `dedupe_key` makes an
    enqueue idempotent (a vendor's message id: a redelivered webhook adds nothing).
    """

    __tablename__ = "jobs"
    # Finished jobs stay as the dedupe ledger; partial indexes keep claiming as cheap with a million of them.
    __table_args__ = (
        Index("ix_jobs_unfinished", "id", postgresql_where=text(UNFINISHED), sqlite_where=text(UNFINISHED)),
        Index("ix_jobs_unfinished_key", "key", "id", postgresql_where=text(UNFINISHED), sqlite_where=text(UNFINISHED)),
    )

    # An integer id, so that "earlier" is well defined for jobs of one key.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(100))
    key: Mapped[str | None] = mapped_column(String(200))
    dedupe_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    payload: Mapped[dict[str, Any]]
    status: Mapped[JobStatus] = mapped_column(String(20), default=JobStatus.queued)
    attempts: Mapped[int] = mapped_column(default=0)
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    # While a worker runs the job it holds a lease; a worker that dies lets it lapse.
    leased_until: Mapped[datetime | None]
    lease_token: Mapped[uuid.UUID | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
