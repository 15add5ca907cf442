"""erasure requests: the receipts of students' data erased on request

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 00:00:00.000000

One row per erasure (ARCO cancellation): when, who asked, how many rows of each kind were
removed; never the student's identifiers, which are what was erased.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erasure_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column(
            "removed", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_requests")),
    )
    op.create_index(op.f("ix_erasure_requests_erased_at"), "erasure_requests", ["erased_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_erasure_requests_erased_at"), table_name="erasure_requests")
    op.drop_table("erasure_requests")
