"""The PostgreSQL the tests use; `BEDEL_TEST_POSTGRES_URL` points them at another one."""

import asyncio
import os

from sqlalchemy import text

from bedel.db import create_engine

POSTGRES_URL = os.environ.get("BEDEL_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def empty_postgres(url: str) -> None:
    """An empty schema, whatever the database held before: a run interrupted mid-migration, or
    a branch's migration that this checkout does not have, cannot be downgraded, only dropped."""

    async def drop() -> None:
        engine = create_engine(url)
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        await engine.dispose()

    asyncio.run(drop())
