"""Every console route checks the role and the CSRF token on the server: a walk over all of
them as anonymous, as an agent, and without tokens, checking that nothing changed."""

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from bedel.api import router
from bedel.db import create_engine, create_sessionmaker, session_scope
from bedel.knowledge import service as knowledge
from bedel.students import service as students
from bedel.students.schemas import StudentUpdate
from bedel.users.models import StaffUser
from tests.console.accounts import ADMIN, AGENT, csrf_of, page_token, sign_in
from tests.console.seeding import draft_campaign
from tests.snapshots import snapshot

# What each may do; every other console route must refuse them.
ANONYMOUS_MAY = {
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    ("POST", "/console/logout"),
    ("POST", "/console/language"),
}
# Agents answer students: the inbox, conversations, replies and handoffs.
AGENT_PAGES = {
    ("GET", "/console/inbox"),
    ("GET", "/console/inbox/list"),
    ("GET", "/console/inbox/events"),
    ("GET", "/console/conversations"),
    ("GET", "/console/conversations/{thread_id}"),
    ("GET", "/console/conversations/{thread_id}/history"),
    ("GET", "/console/conversations/{thread_id}/events"),
    ("GET", "/console/conversations/{thread_id}/attachments/{attachment_id}"),
    ("POST", "/console/conversations/{thread_id}/take"),
    ("POST", "/console/conversations/{thread_id}/reply"),
    ("POST", "/console/conversations/{thread_id}/release"),
}
AGENT_MAY = ANONYMOUS_MAY | {("GET", "/console")} | AGENT_PAGES
# A body that would change something if a route let it through.
FORM = {
    "email": "intruder@example.edu",
    "role": "admin",
    "password": "intruder-password",
    "lang": "en",
    "text": "intruder reply",
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


async def admin_id(database_url: str) -> str:
    """The admin account's id, with a student on the list: what the walk's routes act on."""
    engine = create_engine(database_url)
    try:
        async for session in session_scope(create_sessionmaker(engine)):
            await students.replace_student(session, STUDENT, StudentUpdate(name="Ana", attributes={"adeudo": 4500}))
        async with engine.connect() as connection:
            found = await connection.scalar(select(StaffUser.id).where(StaffUser.email == ADMIN[0]))
    finally:
        await engine.dispose()
    return str(found)


async def targets(database_url: str) -> dict[str, str]:
    """What the walk's routes act on: the admin account, a student (see admin_id), a draft campaign
    (starting it would show in the snapshot) and a stored document."""
    admin = await admin_id(database_url)
    engine = create_engine(database_url)
    campaign = draft_campaign()
    try:
        async for session in session_scope(create_sessionmaker(engine)):
            session.add(campaign)
            added = await knowledge.add_document(session, "pagos.md", b"# Pagos\n\nLas mensualidades vencen el 10.")
    finally:
        await engine.dispose()
    assert added.document is not None
    # A thread or attachment that does not exist: the role and the token are checked first either way.
    return {
        "{user_id}": admin,
        "{thread_id}": admin,
        "{attachment_id}": admin,
        "{campaign_id}": str(campaign.id),
        "{action}": "start",
        "{phone}": STUDENT,
        "{document_id}": str(added.document.id),
    }


STUDENT = "+525512345678"


def concrete(path: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        path = path.replace(name, value)
    return path


def with_document(form: dict[str, str], ids: dict[str, str]) -> dict[str, str]:
    return {**form, "document_id": ids["{document_id}"]}


def test_the_walk_finds_the_console_routes() -> None:
    assert ("POST", "/console/users/{user_id}/disable") in CONSOLE_ROUTES
    assert ("POST", "/console/campaigns/{campaign_id}/{action}") in CONSOLE_ROUTES
    assert ("GET", "/console/campaigns/{campaign_id}/failures.csv") in CONSOLE_ROUTES
    assert ("POST", "/console/students/{phone}/delete") in CONSOLE_ROUTES
    assert ("POST", "/console/students/import") in CONSOLE_ROUTES
    assert ("POST", "/console/documents/{document_id}/delete") in CONSOLE_ROUTES
    assert ("POST", "/console/try") in CONSOLE_ROUTES
    assert len(CONSOLE_ROUTES) >= 10


class TestAnonymous:
    @pytest.mark.parametrize(("method", "path"), [r for r in CONSOLE_ROUTES if r not in ANONYMOUS_MAY])
    async def test_is_sent_to_sign_in_and_changes_nothing(
        self, console: httpx.AsyncClient, clean_database: str, method: str, path: str
    ) -> None:
        ids = await targets(clean_database)
        token = csrf_of(await console.get("/console/login"))
        before = await snapshot(clean_database)
        response = await console.request(
            method, concrete(path, ids), data=with_document({**FORM, "csrf_token": token}, ids)
        )
        assert response.status_code == 303
        assert response.headers["location"].startswith("/console/login")
        assert await snapshot(clean_database) == before


class TestAgent:
    @pytest.mark.parametrize(("method", "path"), [r for r in CONSOLE_ROUTES if r not in AGENT_MAY])
    async def test_gets_403_and_changes_nothing(
        self, as_agent: httpx.AsyncClient, clean_database: str, method: str, path: str
    ) -> None:
        ids = await targets(clean_database)
        token = await page_token(as_agent)
        before = await snapshot(clean_database)
        response = await as_agent.request(
            method, concrete(path, ids), data=with_document({**FORM, "csrf_token": token}, ids)
        )
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("text/html")
        assert "Tu rol no permite" in response.text
        assert await snapshot(clean_database) == before

    async def test_sees_no_link_to_admin_pages(self, as_agent: httpx.AsyncClient) -> None:
        home = (await as_agent.get("/console")).text
        for admin_page in (
            "/console/users",
            "/console/campaigns",
            "/console/students",
            "/console/documents",
            "/console/try",
            "/console/audit",
        ):
            assert admin_page not in home

    async def test_opens_the_inbox_and_the_conversations(self, as_agent: httpx.AsyncClient) -> None:
        home = (await as_agent.get("/console")).text
        assert "/console/inbox" in home
        assert "/console/conversations" in home
        assert (await as_agent.get("/console/inbox")).status_code == 200
        assert (await as_agent.get("/console/conversations")).status_code == 200

    async def test_uploading_a_student_list_gets_403_and_loads_nothing(
        self, as_agent: httpx.AsyncClient, clean_database: str
    ) -> None:
        await admin_id(clean_database)
        before = await snapshot(clean_database)
        response = await as_agent.post(
            "/console/students/import",
            data={"csrf_token": await page_token(as_agent)},
            files={"file": ("alumnos.csv", b"telefono,nombre\n5587654321,Intrusa\n", "text/csv")},
        )
        assert response.status_code == 403
        assert await snapshot(clean_database) == before


class TestCSRF:
    @pytest.mark.parametrize(("method", "path"), [r for r in CONSOLE_ROUTES if r[0] != "GET"])
    async def test_a_post_without_its_token_is_refused_and_changes_nothing(
        self, as_admin: httpx.AsyncClient, clean_database: str, method: str, path: str
    ) -> None:
        ids = await targets(clean_database)
        before = await snapshot(clean_database)
        response = await as_admin.request(method, concrete(path, ids), data=with_document(FORM, ids))
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
