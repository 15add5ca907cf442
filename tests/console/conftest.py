"""The console through the front door: an httpx client with a cookie jar, accounts added
through the users service, and a clock the test moves; for the browser tests, chromium and an empty
database on each backend for a module's `bedel serve`."""

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, async_playwright
from sqlalchemy import make_url, text

from bedel.config import Settings
from bedel.db import create_engine
from bedel.users.models import StaffRole
from tests.backends import POSTGRES_URL
from tests.console.accounts import ADMIN, AGENT, MovableClock, add_account, sign_in
from tests.console.browser import CHROMIUM, CHROMIUM_ARGS
from tests.users.hashing import fast_password_hashing  # noqa: F401  (applies to every console test)


@pytest.fixture
async def accounts(clean_database: str) -> AsyncIterator[None]:
    await add_account(clean_database, ADMIN[0], StaffRole.admin, ADMIN[1])
    await add_account(clean_database, AGENT[0], StaffRole.agent, AGENT[1])
    yield


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def console(
    make_client: Callable[..., Any], settings: Settings, clock: MovableClock, accounts: None
) -> AsyncIterator[httpx.AsyncClient]:
    """A browser with no session yet, on an app with an admin and an agent."""
    async with make_client(settings, clock) as client:
        yield client


@pytest.fixture
async def as_admin(console: httpx.AsyncClient) -> httpx.AsyncClient:
    assert (await sign_in(console, *ADMIN)).status_code == 303
    return console


@pytest.fixture
async def as_agent(console: httpx.AsyncClient) -> httpx.AsyncClient:
    assert (await sign_in(console, *AGENT)).status_code == 303
    return console


@pytest.fixture
async def other_replica(
    make_client: Callable[..., Any], settings: Settings, clock: MovableClock, accounts: None
) -> AsyncIterator[httpx.AsyncClient]:
    """A second browser, served by a second app on the same database, as another replica would."""
    async with make_client(settings, clock) as client:
        yield client


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def served_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty database for one module's `bedel serve`: a SQLite file, or a PostgreSQL database of its
    own beside the tests' (dropping it leaves their migrated schema alone)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('served') / 'bedel.db'}"
    url = make_url(POSTGRES_URL)
    name = f"{url.database}_served"
    engine = create_engine(POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()
