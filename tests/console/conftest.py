"""The console through the front door: an httpx client with a cookie jar, accounts added
through the users service, and a clock the test moves."""

import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from bedel.config import Settings
from bedel.db import create_engine, create_sessionmaker, session_scope, utcnow
from bedel.users import service
from bedel.users.models import StaffRole
from tests.users.conftest import fast_password_hashing  # noqa: F401  (applies to every console test)

ADMIN = ("admin@example.edu", "admin-password-1")
AGENT = ("agent@example.edu", "agent-password-1")


class MovableClock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


async def add_account(database_url: str, email: str, role: StaffRole, password: str) -> None:
    engine = create_engine(database_url)
    try:
        async for session in session_scope(create_sessionmaker(engine)):
            await service.add_user(session, email, role, password)
    finally:
        await engine.dispose()


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    """Open the sign-in page (which hands out the pre-session token) and post the form."""
    token = csrf_of(await client.get("/console/login"))
    return await client.post("/console/login", data={"csrf_token": token, "email": email, "password": password})


async def page_token(client: httpx.AsyncClient, path: str = "/console") -> str:
    """The CSRF token of the signed-in browser, read from a page as a browser would."""
    return csrf_of(await client.get(path))


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
