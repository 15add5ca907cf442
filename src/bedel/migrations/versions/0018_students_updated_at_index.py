"""an index on the students loaded last

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 05:25:00.000000

The console's "columns understood" page samples the 1,000 students loaded last
(`StudentRepository.recent_attributes`, ordered by `updated_at DESC, id`); without an index that
sorts every student (48 ms of the page for 100,000 students on PostgreSQL in bench/console_pages.py).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_students_updated_at", "students", ["updated_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_students_updated_at", table_name="students")
