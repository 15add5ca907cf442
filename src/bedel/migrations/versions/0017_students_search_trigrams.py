"""trigram indexes for the students search on PostgreSQL

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 04:45:00.000000

The console's students search (`/console/students?q=`, "try it, find a student") looks for a part
of the name, matrícula, email or phone; with the name's trigram index alone (0016) the other three
conditions of its OR read every student (135–177 ms for 100,000 students in bench/console_pages.py).
With a trigram index on each, PostgreSQL answers the OR from the four indexes. SQLite reads its
students table, small on one machine, and stops at the search's limit. Like 0016's, these expression
indexes live outside the models (`bedel.migrate`).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Index name -> the expression the search compares (StudentRepository.search).
_INDEXES = {
    "ix_students_external_id_trgm": "lower(external_id)",
    "ix_students_email_trgm": "lower(email)",
    "ix_students_phone_trgm": "phone",
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, expression in _INDEXES.items():
            op.execute(f"CREATE INDEX {name} ON students USING gin ({expression} gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in _INDEXES:
            op.execute(f"DROP INDEX {name}")
