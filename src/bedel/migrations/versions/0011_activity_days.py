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


def _figures() -> dict[str, tuple[list[str], list[Any]]]:
    """Each narrow table of a day's figures: its primary key (with the day, or an id of its own) and its
    own columns. Built afresh each time: a column belongs to one table once made."""
    return {
        "activity_hours": (
            ["id"],
            [
                sa.Column("hour", sa.SmallInteger(), nullable=False),
                sa.Column("role", sa.String(length=20), nullable=False),
                sa.Column("channel", sa.String(length=200), nullable=True),
                sa.Column("outcome", sa.String(length=20), nullable=True),
                sa.Column("model", sa.String(length=200), nullable=True),
                sa.Column("messages", sa.Integer(), nullable=False),
                sa.Column("input_tokens", sa.BigInteger(), nullable=False),
                sa.Column("output_tokens", sa.BigInteger(), nullable=False),
            ],
        ),
        "activity_latencies": (
            ["day", "latency_ms"],
            [
                sa.Column("latency_ms", sa.Integer(), nullable=False),
                sa.Column("answers", sa.Integer(), nullable=False),
            ],
        ),
        "activity_citations": (
            ["day", "document_id"],
            [
                sa.Column("document_id", sa.String(length=200), nullable=False),
                sa.Column("title", sa.Text(), nullable=True),
                sa.Column("answers", sa.Integer(), nullable=False),
            ],
        ),
        "activity_unanswered": (
            ["id"],
            [
                sa.Column("question", sa.Text(), nullable=False),
                sa.Column("asked", sa.Integer(), nullable=False),
            ],
        ),
    }


def upgrade() -> None:
    op.create_table(
        "activity_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_activity_days")),
    )
    for table, (key, columns) in _figures().items():
        own_id = [sa.Column("id", sa.Integer(), nullable=False)] if key == ["id"] else []
        op.create_table(
            table,
            *own_id,
            sa.Column("day", sa.Date(), nullable=False),
            *columns,
            sa.ForeignKeyConstraint(
                ["day"], ["activity_days.day"], name=op.f(f"fk_{table}_day_activity_days"), ondelete="CASCADE"
            ),
            sa.PrimaryKeyConstraint(*key, name=op.f(f"pk_{table}")),
        )
        if own_id:
            # A key that starts with the day serves as its index already.
            op.create_index(op.f(f"ix_{table}_day"), table, ["day"], unique=False)


def downgrade() -> None:
    for table in reversed(_figures()):
        op.drop_table(table)
    op.drop_table("activity_days")
