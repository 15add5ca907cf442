"""The SQLite engine: statements, their rows and streamed results through the one-trip connection."""

from pathlib import Path

from sqlalchemy import text

from bedel.db import create_engine

NUMBERS = "SELECT value FROM json_each('[1, 2, 3, 4, 5, 6, 7]') ORDER BY value"


class TestSQLiteEngine:
    async def test_rows_rowcounts_and_transactions_behave_as_sqlite_does(self, tmp_path: Path) -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bedel.db'}")
        try:
            async with engine.begin() as connection:
                await connection.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
                inserted = await connection.execute(text("INSERT INTO notes (body) VALUES ('uno'), ('dos')"))
                updated = await connection.execute(text("UPDATE notes SET body = upper(body)"))
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO notes (body) VALUES ('tres')"))
                await connection.rollback()
            async with engine.connect() as connection:
                bodies = (await connection.execute(text("SELECT body FROM notes ORDER BY id"))).scalars().all()
                first = (await connection.execute(text(NUMBERS))).first()
        finally:
            await engine.dispose()

        assert (inserted.rowcount, updated.rowcount) == (2, 2)
        assert bodies == ["UNO", "DOS"]
        assert first is not None and first[0] == 1

    async def test_a_streamed_result_yields_every_row_in_batches(self, tmp_path: Path) -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bedel.db'}")
        try:
            async with engine.connect() as connection:
                streamed = await connection.stream(text(NUMBERS))
                batches = [[row[0] for row in batch] async for batch in streamed.partitions(3)]
        finally:
            await engine.dispose()

        assert batches == [[1, 2, 3], [4, 5, 6], [7]]
