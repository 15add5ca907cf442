"""Alembic, driven from code: `bedel db upgrade` and the readiness check use the same script directory."""

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).with_name("migrations")
# Search objects each engine keeps outside the models: the FTS5 table over messages and the tables
# SQLite makes for it, and PostgreSQL's GIN index (migration 0009); the students' indexes on
# expressions (migration 0016).
_OUTSIDE_MODELS = (
    "messages_fts",
    "ix_messages_content_fts",
    "ix_students_external_id_lower",
    "ix_students_name_trgm",
    "ix_students_external_id_trgm",
    "ix_students_email_trgm",
    "ix_students_phone_trgm",
)


def include_in_comparison(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's `include_name`: leave the search objects out of autogenerate's comparison."""
    return not (name or "").startswith(_OUTSIDE_MODELS)


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


@lru_cache(maxsize=1)
def _known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions())


def is_pending(revision: str | None) -> bool:
    """Whether the database lacks migrations of this version.

    A revision this version does not know is newer: a rollout is under way and the next
    version migrated first. Migrations add before they remove (docs/operations.md), so this
    version keeps working against the newer schema and is not held back.
    """
    if revision == head_revision():
        return False
    return revision is None or revision in _known_revisions()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
