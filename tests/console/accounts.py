"""Console accounts and a signed-in browser's steps, shared by the console tests."""

import re
from datetime import datetime, timedelta

import httpx

from bedel.db import create_engine, create_sessionmaker, session_scope, utcnow
from bedel.users import service
from bedel.users.models import StaffRole

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
