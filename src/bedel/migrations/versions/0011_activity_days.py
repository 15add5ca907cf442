"""the dashboard's figures of past days, kept once read from their messages

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 00:05:00.000000

A month is hundreds of thousands of messages: the dashboard reads a past day from them once and keeps
its figures here (chat/activity.py), in narrow rows summed over a period in SQL. Empty at first: each
day is filled the first time a dashboard shows it.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _day(table: str) -> list[Any]:
    return [
        sa.Column("day", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["day"], ["activity_days.day"], name=op.f(f"fk_{table}_day_activity_days"), ondelete="CASCADE"
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "activity_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_activity_days")),
    )
    op.create_table(
        "activity_hours",
        sa.Column("id", sa.Integer(), nullable=False),
        *_day("activity_hours"),
        sa.Column("hour", sa.SmallInteger(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity_hours")),
    )
    op.create_table(
        "activity_latencies",
        *_day("activity_latencies"),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("answers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "latency_ms", name=op.f("pk_activity_latencies")),
    )
    op.create_table(
        "activity_citations",
        *_day("activity_citations"),
        sa.Column("document_id", sa.String(length=200), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("answers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "document_id", name=op.f("pk_activity_citations")),
    )
    op.create_table(
        "activity_unanswered",
        sa.Column("id", sa.Integer(), nullable=False),
        *_day("activity_unanswered"),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("asked", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity_unanswered")),
    )
    for table in ("activity_hours", "activity_unanswered"):
        op.create_index(op.f(f"ix_{table}_day"), table, ["day"], unique=False)


def downgrade() -> None:
    for table in ("activity_hours", "activity_unanswered"):
        op.drop_index(op.f(f"ix_{table}_day"), table_name=table)
    for table in ("activity_unanswered", "activity_citations", "activity_latencies", "activity_hours", "activity_days"):
        op.drop_table(table)
