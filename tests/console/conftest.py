"""The console through the front door: an httpx client with a cookie jar, accounts added
through the users service, and a clock the test moves."""

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from bedel.config import Settings
from bedel.users.models import StaffRole
from tests.console.accounts import ADMIN, AGENT, MovableClock, add_account, sign_in
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
