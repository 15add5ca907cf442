"""Real databases: every test that takes `database_url` runs on SQLite and on PostgreSQL."""

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from bedel import migrate
from bedel.app import create_app
from bedel.config import Settings
from bedel.db import Base, Clock, create_engine, create_sessionmaker, utcnow
from tests.backends import POSTGRES_URL, empty_postgres
from tests.clocks import BreakerClock
from tests.mailbox import Mailbox, running_smtp_server


# `-m "not postgres"` (make test-fast) deselects the PostgreSQL runs.
@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database, once per run and backend."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'bedel.db'}"
    else:
        url = POSTGRES_URL
        empty_postgres(url)
    migrate.upgrade(url)
    yield url


@pytest.fixture(autouse=True)
def seeded_random() -> None:
    """Random draws (the campaign runner's retry jitter, the tests' own) repeat from run to run."""
    random.seed(0)


@pytest.fixture
def breaker_clock(monkeypatch: pytest.MonkeyPatch) -> BreakerClock:
    """The LLM circuit breaker's clock, moved by the test instead of slept on."""
    clock = BreakerClock()
    monkeypatch.setattr("purgatory.domain.model.time", clock)
    return clock


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server on loopback (aiosmtpd) and the mailbox it delivers to."""
    with running_smtp_server() as server:
        yield server


@pytest.fixture(scope="session")
def migrated_postgres() -> str:
    """PostgreSQL emptied and migrated once per run."""
    empty_postgres(POSTGRES_URL)
    migrate.upgrade(POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture
async def postgres(migrated_postgres: str) -> AsyncIterator[str]:
    """PostgreSQL at head with empty tables, for tests that start their own server and worker processes."""
    # At head again: a migration test may have stepped it down.
    await asyncio.to_thread(migrate.upgrade, POSTGRES_URL)
    engine = create_engine(POSTGRES_URL)
    async with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(text(f"DELETE FROM {table.name}"))
    await engine.dispose()
    yield POSTGRES_URL


@pytest.fixture
async def clean_database(database_url: str) -> AsyncIterator[str]:
    """Each test starts from empty tables, and a new knowledge revision (the row migration 0002 seeds)."""
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(text(f"DELETE FROM {table.name}"))
        await connection.execute(
            text("INSERT INTO knowledge_version (id, revision, changed_at) VALUES (1, :revision, CURRENT_TIMESTAMP)"),
            {"revision": uuid.uuid4().hex},
        )
    await engine.dispose()
    yield database_url


@pytest.fixture
async def session(clean_database: str) -> AsyncIterator[AsyncSession]:
    engine = create_engine(clean_database)
    async with create_sessionmaker(engine)() as session:
        yield session
    await engine.dispose()


@pytest.fixture
def make_settings(clean_database: str, tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": clean_database,
            "knowledge_index_dir": tmp_path / "index",
            "rate_limit_per_phone": "1000/minute",
            # Only the tests of background work run the job runner (tests/channels turn it on).
            "jobs_in_process": False,
            # The tests of retention and of the privacy notice (tests/retention) turn these on, so the
            # other tests' queues and replies hold only what they are about.
            "job_retention_days": 0,
            "privacy_notice": "off",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def make_client() -> Callable[[Settings], Any]:
    """`async with make_client(settings) as client:` runs the real app, lifespan included."""

    class _Client:
        def __init__(self, settings: Settings, clock: Clock = utcnow) -> None:
            self.app: FastAPI = create_app(settings, clock)

        async def __aenter__(self) -> httpx.AsyncClient:
            self._lifespan = self.app.router.lifespan_context(self.app)
            await self._lifespan.__aenter__()
            self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://bedel.test")
            return self._client

        async def __aexit__(self, *exc: object) -> None:
            await self._client.aclose()
            await self._lifespan.__aexit__(None, None, None)

    return _Client


@pytest.fixture
async def client(make_client: Callable[[Settings], Any], settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(settings) as client:
        yield client


@pytest.fixture
def demo_students() -> Path:
    return Path(__file__).parents[1] / "demo" / "students.csv"
