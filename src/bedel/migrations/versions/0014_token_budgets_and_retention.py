"""token usage per student and day and per month, and when each contact got the privacy notice

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 00:10:00.000000

Contacts from before this revision have not been sent the notice: each gets it with their next answer.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "token_usage",
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("subject", sa.String(length=16), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("period", "subject", name=op.f("pk_token_usage")),
    )
    with op.batch_alter_table("channel_contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("privacy_notice_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("channel_contacts", schema=None) as batch_op:
        batch_op.drop_column("privacy_notice_at")
    op.drop_table("token_usage")
