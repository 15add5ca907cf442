"""Every console route checks the role and the CSRF token on the server: a walk over all of
them as anonymous, as an agent, and without tokens, checking that nothing changed."""

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import func, select

from bedel.api import router
from bedel.chat.models import Message, Thread
from bedel.db import create_engine, create_sessionmaker, session_scope
from bedel.knowledge import service as knowledge
from bedel.knowledge.models import Document
from bedel.users.models import StaffSession, StaffUser
from tests.console.accounts import ADMIN, AGENT, csrf_of, page_token, sign_in

# What each may do; every other console route must refuse them.
ANONYMOUS_MAY = {
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    ("POST", "/console/logout"),
    ("POST", "/console/language"),
}
AGENT_MAY = ANONYMOUS_MAY | {("GET", "/console")}
# A body that would change something if a route let it through.
FORM = {
    "email": "intruder@example.edu",
    "role": "admin",
    "password": "intruder-password",
    "lang": "en",
    "phone": "+525512345678",
    "question": "¿Cuánto debo?",
}


def _walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    # FastAPI keeps included routers nested; follow them down to the routes.
    for route in routes:
        if hasattr(route, "original_router"):
            yield from _walk(route.original_router.routes, prefix + route.include_context.prefix)
        else:
            yield prefix, route


CONSOLE_ROUTES = sorted(
    (method, prefix + route.path)
    for prefix, route in _walk(router.routes)
    if isinstance(route, APIRoute) and (prefix + route.path).startswith("/console")
    for method in route.methods or ()
)


async def snapshot(database_url: str) -> tuple[Any, ...]:
    """The accounts as stored, and how many sessions are open."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            users = (
                await connection.execute(
                    select(StaffUser.email, StaffUser.role, StaffUser.disabled, StaffUser.password_hash).order_by(
                        StaffUser.email
                    )
                )
            ).all()
            sessions = await connection.scalar(select(func.count()).select_from(StaffSession))
            documents = (await connection.execute(select(Document.id, Document.content_hash))).all()
            conversations = [
                await connection.scalar(select(func.count()).select_from(table)) for table in (Thread, Message)
            ]
    finally:
        await engine.dispose()
    return (tuple(users), sessions, tuple(documents), tuple(conversations))


async def admin_id(database_url: str) -> str:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            found = await connection.scalar(select(StaffUser.id).where(StaffUser.email == ADMIN[0]))
    finally:
        await engine.dispose()
    return str(found)


async def a_document(database_url: str) -> str:
    """A stored document, for the routes that would change or delete one."""
    engine = create_engine(database_url)
    try:
        async for session in session_scope(create_sessionmaker(engine)):
            added = await knowledge.add_document(session, "pagos.md", b"# Pagos\n\nLas mensualidades vencen el 10.")
    finally:
        await engine.dispose()
    assert added.document is not None
    return str(added.document.id)


def concrete(path: str, target: str, document: str = "") -> str:
    return path.replace("{user_id}", target).replace("{document_id}", document)


def with_document(form: dict[str, str], document: str) -> dict[str, str]:
    return {**form, "document_id": document}


def test_the_walk_finds_the_console_routes() -> None:
    assert ("POST", "/console/users/{user_id}/disable") in CONSOLE_ROUTES
    assert ("POST", "/console/documents/{document_id}/delete") in CONSOLE_ROUTES
    assert ("POST", "/console/try") in CONSOLE_ROUTES
    assert len(CONSOLE_ROUTES) >= 10


class TestAnonymous:
    @pytest.mark.parametrize(("method", "path"), [r for r in CONSOLE_ROUTES if r not in ANONYMOUS_MAY])
    async def test_is_sent_to_sign_in_and_changes_nothing(
        self, console: httpx.AsyncClient, clean_database: str, method: str, path: str
    ) -> None:
        target, document = await admin_id(clean_database), await a_document(clean_database)
        token = csrf_of(await console.get("/console/login"))
        before = await snapshot(clean_database)
        response = await console.request(
            method, concrete(path, target, document), data=with_document({**FORM, "csrf_token": token}, document)
        )
        assert response.status_code == 303
        assert response.headers["location"].startswith("/console/login")
        assert await snapshot(clean_database) == before


class TestAgent:
    @pytest.mark.parametrize(("method", "path"), [r for r in CONSOLE_ROUTES if r not in AGENT_MAY])
    async def test_gets_403_and_changes_nothing(
        self, as_agent: httpx.AsyncClient, clean_database: str, method: str, path: str
    ) -> None:
        target, document = await admin_id(clean_database), await a_document(clean_database)
        token = await page_token(as_agent)
        before = await snapshot(clean_database)
        response = await as_agent.request(
            method, concrete(path, target, document), data=with_document({**FORM, "csrf_token": token}, document)
        )
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("text/html")
        assert "Tu rol no permite" in response.text
        assert await snapshot(clean_database) == before

    async def test_sees_no_link_to_admin_pages(self, as_agent: httpx.AsyncClient) -> None:
        home = (await as_agent.get("/console")).text
        for admin_page in ("/console/users", "/console/documents", "/console/try"):
            assert admin_page not in home


class TestCSRF:
    @pytest.mark.parametrize(("method", "path"), [r for r in CONSOLE_ROUTES if r[0] != "GET"])
    async def test_a_post_without_its_token_is_refused_and_changes_nothing(
        self, as_admin: httpx.AsyncClient, clean_database: str, method: str, path: str
    ) -> None:
        target, document = await admin_id(clean_database), await a_document(clean_database)
        before = await snapshot(clean_database)
        response = await as_admin.request(method, concrete(path, target, document), data=with_document(FORM, document))
        assert response.status_code == 403
        assert "El formulario caducó" in response.text
        assert await snapshot(clean_database) == before

    async def test_a_wrong_token_is_refused(self, as_admin: httpx.AsyncClient, clean_database: str) -> None:
        before = await snapshot(clean_database)
        response = await as_admin.post("/console/users", data={**FORM, "csrf_token": "0" * 64})
        assert response.status_code == 403
        assert await snapshot(clean_database) == before

    async def test_another_browsers_token_is_refused(
        self, as_admin: httpx.AsyncClient, other_replica: httpx.AsyncClient, clean_database: str
    ) -> None:
        await sign_in(other_replica, *AGENT)
        foreign = await page_token(other_replica)
        response = await as_admin.post("/console/users", data={**FORM, "csrf_token": foreign})
        assert response.status_code == 403

    async def test_the_token_may_come_as_the_htmx_header(self, as_admin: httpx.AsyncClient) -> None:
        page = await as_admin.get("/console/users")
        header = re.search(r"hx-headers='\{\"X-CSRF-Token\": \"([0-9a-f]+)\"\}'", page.text)
        assert header is not None
        response = await as_admin.post(
            "/console/users", data=FORM, headers={"X-CSRF-Token": header.group(1), "HX-Request": "true"}
        )
        assert response.status_code == 303

    async def test_signing_in_changes_the_token(self, console: httpx.AsyncClient) -> None:
        before = csrf_of(await console.get("/console/login"))
        await sign_in(console, *ADMIN)
        assert await page_token(console) != before
