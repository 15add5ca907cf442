"""Database engine, sessions and the declarative base shared by every domain."""

import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any, ClassVar

import aiosqlite
from aiosqlite.context import contextmanager as aiosqlite_context
from asyncpg import PostgresConnectionError
from pydantic import AfterValidator
from sqlalchemy import JSON, URL, DateTime, MetaData, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.sqlite.aiosqlite import dialect as aiosqlite_dialect
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import ConnectionPoolEntry

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


# What tells the time where a rule depends on it (job schedules, burst windows); tests pass one they move.
Clock = Callable[[], datetime]


def as_utc(moment: datetime) -> datetime:
    # SQLite hands timestamps back without their zone; Bedel stores them all in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


UTCDateTime = Annotated[datetime, AfterValidator(as_utc)]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONType,
        list[dict[str, Any]]: JSONType,
    }


class RecordMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def conflict_insert(session: AsyncSession, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can take ON CONFLICT clauses, in the session's dialect (both spell them alike)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def create_engine(url: str) -> AsyncEngine:
    # Statement parameters (phones, names, answers) never reach an error message, so never a log or a body.
    if not url.startswith("sqlite"):
        # Pre-ping: a connection the server dropped (a restart, a cut network) is replaced before use.
        return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, hide_parameters=True)
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # One connection per process: SQLite serialises writers anyway, and a single
    # connection cannot hit "database is locked" against itself.
    # Every session ends in commit or rollback, so the pool's reset-on-return rollback is a wasted hop.
    engine = create_async_engine(
        url,
        pool_size=1,
        max_overflow=0,
        pool_timeout=60,
        pool_reset_on_return=None,
        hide_parameters=True,
        async_creator=partial(_one_hop_connection, make_url(url)),
    )
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def is_database_outage(exc: BaseException) -> bool:
    """Whether `exc` means the database could not be reached or dropped the connection, rather than a bug.

    A lost connection invalidates the pool (SQLAlchemy tells disconnects apart); an operational
    error is the server's or the file's state (down, locked, out of connections); a failed connect
    comes through as the socket's or asyncpg's own error; a pool timeout means no connection came back.
    """
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    return isinstance(exc, ConnectionError | PostgresConnectionError | PoolTimeout)


def _one_hop_connection(url: URL) -> aiosqlite.Connection:
    args, options = aiosqlite_dialect().create_connect_args(url)
    # The cursor is created and its statements run on the event loop's thread (below), waits on aiosqlite's.
    options["check_same_thread"] = False
    connection = _OneHopConnection(partial(sqlite3.connect, *args, **options), iter_chunk_size=64)
    connection._thread.daemon = True  # as SQLAlchemy's own aiosqlite connect does
    return connection


class _OneHopConnection(aiosqlite.Connection):
    """aiosqlite, with its statements run in place, and only waits and commits on its thread.

    Each trip to aiosqlite's thread and back wakes the event loop through its self-pipe and
    hands the GIL over twice; SQLAlchemy's adapter makes four per statement (create the cursor,
    execute, fetch, close), and a /chat turn runs about ten statements, most of them taking a few
    microseconds in SQLite: the trips were a third of the turn's CPU (bench/PROFILE.md). Here
    the cursor is made and closed in place and a statement runs on the event loop's thread,
    rows and all, with no busy timeout. One that finds the database locked by another process
    (SQLITE_BUSY: it did nothing) is run again on aiosqlite's thread, which waits for the lock as
    long as `BUSY_TIMEOUT_MS`, so the event loop never waits on another process. Commits and
    rollbacks (the file's I/O) stay on the thread. SQLAlchemy runs one statement at a time on a
    connection, so nothing else uses it meanwhile.
    """

    @aiosqlite_context  # awaitable and an async context manager, as SQLAlchemy uses aiosqlite's
    async def cursor(self) -> aiosqlite.Cursor:
        assert self._connection is not None
        return _PrefetchingCursor(self, self._connection.cursor())

    # A session that only read (an API key's lookup) has no transaction open: nothing to end on the thread.
    async def commit(self) -> None:
        if self._connection is None or self._connection.in_transaction:
            await super().commit()

    async def rollback(self) -> None:
        if self._connection is None or self._connection.in_transaction:
            await super().rollback()


class _PrefetchingCursor(aiosqlite.Cursor):
    _rows: list[Any] | None = None

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> aiosqlite.Cursor:
        parameters = parameters or ()
        try:
            self._rows = _execute_and_fetch(self._cursor, sql, parameters)
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_BUSY:
                raise
            self._rows = await self._waiting(partial(_execute_and_fetch, self._cursor, sql, parameters))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> aiosqlite.Cursor:
        await self._waiting(partial(self._cursor.executemany, sql, parameters))  # type: ignore[arg-type]
        return self

    async def _waiting(self, run: Callable[[], Any]) -> Any:
        """`run` on aiosqlite's thread, waiting up to `BUSY_TIMEOUT_MS` for another process's write lock."""
        return await self._execute(_with_busy_timeout, self._cursor.connection, run)  # type: ignore[no-untyped-call]

    async def fetchall(self) -> Iterable[Any]:
        rows, self._rows = self._rows, None
        return rows if rows is not None else await super().fetchall()

    async def fetchone(self) -> Any:
        if self._rows is None:
            return await super().fetchone()
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Iterable[Any]:
        if self._rows is None:
            return await super().fetchmany(size)
        count = size or self.arraysize
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def close(self) -> None:
        self._cursor.close()


# How long a statement waits for another process's write lock (on aiosqlite's thread).
BUSY_TIMEOUT_MS = 10000


def _execute_and_fetch(cursor: sqlite3.Cursor, sql: str, parameters: Iterable[Any]) -> list[Any] | None:
    """The statement and, when it returns rows, all of them."""
    cursor.execute(sql, parameters)  # type: ignore[arg-type]
    return cursor.fetchall() if cursor.description else None


def _with_busy_timeout(connection: sqlite3.Connection, run: Callable[[], Any]) -> Any:
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        return run()
    finally:
        connection.execute("PRAGMA busy_timeout=0")


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Deleted rows are overwritten with zeros, so an erased student's data does not linger in free pages.
    cursor.execute("PRAGMA secure_delete=ON")
    # Statements run on the event loop without waiting for a lock; one that finds it taken waits on
    # aiosqlite's thread (`_execute_waiting`). Commits hold the lock already, or write nothing.
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def session_scope(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One transaction: commit on success, roll back on error."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
