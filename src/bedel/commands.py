"""What the `bedel` subcommands share: their exit codes, one line on stderr for an error, and
the database opened for one command (its schema current), with its work done in one transaction."""

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import NoReturn, TypeVar

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bedel import migrate
from bedel.config import ConfigError, Settings, load_settings
from bedel.db import create_engine, create_sessionmaker, session_scope
from bedel.errors import BedelError

EXIT_INPUT = 1  # refused: a file that cannot be read, a value a service refuses
EXIT_CONFIG = 2
EXIT_DATABASE = 3
EXIT_MIGRATIONS = 4
EXIT_NOT_FOUND = 7
EXIT_EXISTS = 8

T = TypeVar("T")


def fail(code: int, message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run(
    work: Callable[[Settings, AsyncEngine], Awaitable[T]], refusals: Mapping[type[BedelError], int] | None = None
) -> T:
    """Do `work` on the database of the settings; a refusal or a broken set-up ends the command with its code.

    A refusal exits with the code `refusals` gives its class (or a base of it), else EXIT_INPUT.
    """
    try:
        settings = load_settings()
        return asyncio.run(_on_database(settings, work))
    except ConfigError as exc:
        fail(EXIT_CONFIG, str(exc))
    except BedelError as exc:
        codes = (code for kind, code in (refusals or {}).items() if isinstance(exc, kind))
        fail(next(codes, EXIT_INPUT), exc.message)
    except (SQLAlchemyError, OSError) as exc:
        fail(EXIT_DATABASE, f"database error ({type(exc).__name__}); check BEDEL_DATABASE_URL")


def run_in_transaction(
    work: Callable[[AsyncSession], Awaitable[T]], refusals: Mapping[type[BedelError], int] | None = None
) -> T:
    """`run` with `work` done in one transaction, committed when it returns."""
    return run(lambda _settings, engine: in_transaction(create_sessionmaker(engine), work), refusals)


async def in_transaction(
    sessionmaker: async_sessionmaker[AsyncSession], work: Callable[[AsyncSession], Awaitable[T]]
) -> T:
    results: list[T] = []
    # Run the loop to its end: session_scope commits after its single yield.
    async for session in session_scope(sessionmaker):
        results.append(await work(session))
    return results[0]


async def _on_database(settings: Settings, work: Callable[[Settings, AsyncEngine], Awaitable[T]]) -> T:
    engine = create_engine(settings.database_url)
    try:
        revision = await migrate.current_revision(engine)
        if migrate.is_pending(revision):
            fail(EXIT_MIGRATIONS, f"the database schema is at {revision}; run `bedel db upgrade`")
        return await work(settings, engine)
    finally:
        await engine.dispose()
