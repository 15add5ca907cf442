"""outbound receipts: vendor message ids, delivery path and error code; answer feedback

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 22:35:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivery_error_code", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("delivery_path", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("vendor_message_id", sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f("ix_messages_vendor_message_id"), ["vendor_message_id"], unique=False)

    op.create_table(
        "answer_feedback",
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("helpful", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_answer_feedback_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_answer_feedback")),
        sa.UniqueConstraint("message_id", name=op.f("uq_answer_feedback_message_id")),
    )


def downgrade() -> None:
    op.drop_table("answer_feedback")

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_vendor_message_id"))
        batch_op.drop_column("vendor_message_id")
        batch_op.drop_column("delivery_path")
        batch_op.drop_column("delivery_error_code")
