"""Migrations: every revision upgrades and downgrades cleanly, and the models match the schema."""

import asyncio
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from bedel import migrate
from bedel.db import Base, create_engine

REVISIONS = [script.revision for script in ScriptDirectory(str(migrate.MIGRATIONS)).walk_revisions("base", "heads")]


@pytest.fixture
def scratch_url(database_url: str) -> Any:
    """The test database itself, put back at head afterwards."""
    yield database_url
    migrate.upgrade(database_url)


class TestStairway:
    @pytest.mark.parametrize("revision", REVISIONS[::-1])
    def test_each_revision_upgrades_downgrades_and_upgrades_again(self, scratch_url: str, revision: str) -> None:
        script = ScriptDirectory(str(migrate.MIGRATIONS)).get_revision(revision)
        down = script.down_revision or "base"
        assert isinstance(down, str)  # one parent each: the history is a line
        migrate.downgrade(scratch_url, down)
        migrate.upgrade(scratch_url, revision)
        migrate.downgrade(scratch_url, down)
        migrate.upgrade(scratch_url, revision)


class TestSchemaMatchesModels:
    def test_no_model_change_lacks_a_migration(self, database_url: str) -> None:
        async def differences() -> list[Any]:
            engine = create_engine(database_url)
            async with engine.connect() as connection:
                diff: list[Any] = await connection.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(sync, opts={"include_name": migrate.include_in_comparison}),
                        Base.metadata,
                    )
                )
            await engine.dispose()
            return diff

        assert asyncio.run(differences()) == []
