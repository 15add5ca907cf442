"""an index on when each rating was given, for the dashboard's ratings of a period

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 14:10:00.000000

The dashboard counts the ratings given in the chosen days; without this index PostgreSQL reads
every rating to find them.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_answer_feedback_created_at"), "answer_feedback", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_answer_feedback_created_at"), table_name="answer_feedback")
