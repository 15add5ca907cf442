"""hashed lookup keys of every student's identifiers, for the chat's output guard

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 00:10:00.000000

The guard checks each answer's phones, emails, matrículas, CURPs and names against every
student with one indexed query. Students already stored get their keys here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bedel.db import JSONType
from bedel.students.lookup import student_keys

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000

_students = sa.table(
    "students",
    sa.column("id", sa.Uuid()),
    sa.column("phone", sa.String()),
    sa.column("name", sa.String()),
    sa.column("email", sa.String()),
    sa.column("external_id", sa.String()),
    sa.column("attributes", JSONType),
)


def upgrade() -> None:
    keys = op.create_table(
        "student_lookup_keys",
        sa.Column("key_hash", sa.String(length=32), nullable=False),
        sa.Column("student_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["student_id"], ["students.id"], name=op.f("fk_student_lookup_keys_student_id_students"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("key_hash", "student_id", name=op.f("pk_student_lookup_keys")),
    )
    op.create_index(op.f("ix_student_lookup_keys_student_id"), "student_lookup_keys", ["student_id"], unique=False)
    connection = op.get_bind()
    query = sa.select(_students).order_by(_students.c.id).limit(BATCH)
    last = None
    while rows := connection.execute(query.where(_students.c.id > last) if last else query).all():
        values = [
            {"key_hash": key, "student_id": row.id, "kind": kind.value}
            for row in rows
            for key, kind in student_keys(
                phone=row.phone,
                name=row.name,
                email=row.email,
                external_id=row.external_id,
                attributes=row.attributes or {},
            )
        ]
        if values:
            op.bulk_insert(keys, values)
        last = rows[-1].id


def downgrade() -> None:
    op.drop_index(op.f("ix_student_lookup_keys_student_id"), table_name="student_lookup_keys")
    op.drop_table("student_lookup_keys")
