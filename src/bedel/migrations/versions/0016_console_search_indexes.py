"""indexes for the console's inbox and conversation search on large databases

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 04:00:00.000000

Measured with bench/console_pages.py (100,000 conversations, 1,000,000 messages): the conversations
of one status, newest first, walked every conversation (status, updated_at); the inbox read every
message of each handed-off conversation for when a person last wrote (a partial index of the staff
messages); a search by a part of a name or a matrícula read every student. Names are searched with
PostgreSQL's trigram index (the `pg_trgm` extension, shipped with PostgreSQL and trusted: the
database's owner may create it); SQLite reads its students table, small on one machine. Like the
full-text index, the students' expression indexes live outside the models (`bedel.migrate`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STAFF = sa.text("role = 'staff'")


def upgrade() -> None:
    op.drop_index("ix_threads_status", table_name="threads")
    op.create_index("ix_threads_status_updated_at", "threads", ["status", "updated_at"], unique=False)
    op.create_index(
        "ix_messages_staff",
        "messages",
        ["thread_id", "created_at"],
        unique=False,
        postgresql_where=_STAFF,
        sqlite_where=_STAFF,
    )
    op.execute("CREATE INDEX ix_students_external_id_lower ON students (lower(external_id))")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_students_name_trgm ON students USING gin (lower(name) gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_students_name_trgm")
    op.execute("DROP INDEX ix_students_external_id_lower")
    op.drop_index("ix_messages_staff", table_name="messages")
    op.drop_index("ix_threads_status_updated_at", table_name="threads")
    op.create_index("ix_threads_status", "threads", ["status"], unique=False)
