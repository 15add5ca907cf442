import asyncio

from alembic import context
from sqlalchemy.engine import Connection

import bedel.audit.models
import bedel.budgets.models
import bedel.campaigns.models
import bedel.channels.models
import bedel.chat.models
import bedel.consent.models
import bedel.feedback.models
import bedel.identities.models
import bedel.jobs.models
import bedel.keys.models
import bedel.knowledge.models
import bedel.privacy.models
import bedel.students.models
import bedel.users.models  # noqa: F401
from bedel.config import load_settings
from bedel.db import Base, create_engine
from bedel.migrate import include_in_comparison

config = context.config
target_metadata = Base.metadata
# `bedel db upgrade` passes the URL; the plain `alembic` command reads the settings.
database_url: str = config.attributes.get("database_url") or load_settings().database_url


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        include_name=include_in_comparison,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async() -> None:
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        await connection.run_sync(run_migrations)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=database_url, target_metadata=target_metadata, render_as_batch=True, include_name=include_in_comparison
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(run_async())
