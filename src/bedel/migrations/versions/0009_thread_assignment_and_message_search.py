"""who on staff has a handed-off conversation, since when it waits, and full-text search over messages

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 12:50:00.000000

Full-text search is each engine's own: on SQLite an FTS5 table over `messages` (external
content, so the text is stored once) kept in step by triggers; on PostgreSQL a GIN index on
`to_tsvector('spanish', content)`, which queries written with the same expression use. Both
live outside the models; `bedel.migrate.include_in_comparison` keeps them out of the
models-vs-schema comparison.

The FTS5 table follows `messages` by rowid. VACUUM keeps the rowids of such a table in
practice; should they ever move, `INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')`
rebuilds the index from `messages`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# remove_diacritics 2: "matricula" finds "matrícula", as students type without accents.
_SQLITE_UP = [
    "CREATE VIRTUAL TABLE messages_fts USING fts5("
    "content, content='messages', content_rowid='rowid', tokenize='unicode61 remove_diacritics 2')",
    "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')",
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN "
    "INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content); END",
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content); END",
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content); "
    "INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content); END",
]
_SQLITE_DOWN = [
    "DROP TRIGGER messages_fts_update",
    "DROP TRIGGER messages_fts_delete",
    "DROP TRIGGER messages_fts_insert",
    "DROP TABLE messages_fts",
]
_POSTGRES_UP = ["CREATE INDEX ix_messages_content_fts ON messages USING gin (to_tsvector('spanish', content))"]
_POSTGRES_DOWN = ["DROP INDEX ix_messages_content_fts"]


def upgrade() -> None:
    # Plain ALTER TABLE, not a batch copy: rebuilding `threads` on SQLite would drop the table
    # its messages cascade from. No foreign key either, for the same reason on the way down
    # (SQLite cannot drop a column a key uses); staff accounts are disabled, never deleted.
    op.add_column("threads", sa.Column("assigned_to", sa.Uuid(), nullable=True))
    op.add_column("threads", sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("threads", sa.Column("handoff_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_threads_status"), "threads", ["status"], unique=False)
    op.create_index(op.f("ix_threads_updated_at"), "threads", ["updated_at"], unique=False)
    op.create_index(op.f("ix_messages_created_at"), "messages", ["created_at"], unique=False)
    for statement in _SQLITE_UP if op.get_bind().dialect.name == "sqlite" else _POSTGRES_UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in _SQLITE_DOWN if op.get_bind().dialect.name == "sqlite" else _POSTGRES_DOWN:
        op.execute(statement)
    op.drop_index(op.f("ix_messages_created_at"), table_name="messages")
    op.drop_index(op.f("ix_threads_updated_at"), table_name="threads")
    op.drop_index(op.f("ix_threads_status"), table_name="threads")
    op.drop_column("threads", "handoff_at")
    op.drop_column("threads", "assigned_at")
    op.drop_column("threads", "assigned_to")
