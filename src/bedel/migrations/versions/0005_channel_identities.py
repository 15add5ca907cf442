"""channel identities, and room for business-scoped ids in channel contacts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 22:19:03.585725
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_identities",
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("claimed_external_id", sa.String(length=100), nullable=True),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("code_hash", sa.String(length=64), nullable=True),
        sa.Column("code_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("invited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_identities")),
        sa.UniqueConstraint("kind", "value", name=op.f("uq_channel_identities_kind")),
    )
    with op.batch_alter_table("channel_identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_channel_identities_phone"), ["phone"], unique=False)

    with op.batch_alter_table("channel_contacts", schema=None) as batch_op:
        batch_op.alter_column(
            "address", existing_type=sa.VARCHAR(length=64), type_=sa.String(length=200), existing_nullable=False
        )


def downgrade() -> None:
    # Fails while a contact's address is a business-scoped id longer than 64 characters, rather than cut it.
    with op.batch_alter_table("channel_contacts", schema=None) as batch_op:
        batch_op.alter_column(
            "address", existing_type=sa.String(length=200), type_=sa.VARCHAR(length=64), existing_nullable=False
        )

    with op.batch_alter_table("channel_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_channel_identities_phone"))

    op.drop_table("channel_identities")
