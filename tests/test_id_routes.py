"""Every route that takes an id, walked from the app's route table: each caller who may not use it
(nobody, a client key, a staff key on the console, a console agent on admin pages) is refused the
same way for an id that exists as for one that does not, so the answer tells them nothing, and
the database is the same afterwards.

A new route whose path takes a parameter not named in ID_PARAMETERS fails
test_every_id_parameter_has_a_maker: add one line there saying how to store one."""

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.app import create_app
from bedel.auth import Permission
from bedel.chat.models import Attachment, Message, Role, Thread
from bedel.config import Settings
from bedel.db import create_engine, create_sessionmaker, session_scope
from bedel.knowledge import service as knowledge
from bedel.students import service as students
from bedel.students.schemas import StudentUpdate
from bedel.users import service as users
from bedel.users.models import StaffRole
from tests.console.accounts import AGENT, add_account, csrf_of, page_token, sign_in
from tests.console.seeding import draft_campaign, photo
from tests.snapshots import snapshot
from tests.test_permissions import api_routes
from tests.users.hashing import fast_password_hashing  # noqa: F401  (the agent signs in)

CLIENT_KEY = "client-key-0123456789abcdef"
STAFF_KEY = "staff-key-0123456789abcdef"
PHONE = "+525512345678"
# A console form that would change something if a route let it through.
FORM = {"text": "intruso", "email": "intruso@example.edu", "role": "admin", "password": "intruso-123456", "lang": "en"}

# Stores one of a kind and gives its id; `made` holds the ids stored before it (in this dict's order).
Maker = Callable[[AsyncSession, dict[str, str]], Awaitable[str]]


def any_uuid() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class IdParameter:
    existing: Maker
    # A value naming nothing stored; the answer to it must be the answer to an existing one.
    absent: Callable[[], str] = field(default=any_uuid)


async def a_thread_with_a_file(session: AsyncSession, made: dict[str, str]) -> str:
    thread = Thread(phone=PHONE, message_count=1)
    session.add(thread)
    await session.flush()
    session.add(Message(thread_id=thread.id, seq=1, role=Role.user, content="mi credencial", attachments=[photo()]))
    await session.flush()
    return str(thread.id)


async def its_file(session: AsyncSession, made: dict[str, str]) -> str:
    found = await session.scalar(
        select(Attachment.id).join(Message).where(Message.thread_id == uuid.UUID(made["thread_id"]))
    )
    return str(found)


async def a_student(session: AsyncSession, made: dict[str, str]) -> str:
    await students.replace_student(session, PHONE, StudentUpdate(name="Ana", attributes={"adeudo": 4500}))
    return PHONE


async def a_document(session: AsyncSession, made: dict[str, str]) -> str:
    added = await knowledge.add_document(session, "pagos.md", b"# Pagos\n\nLas mensualidades vencen el 10.")
    assert added.document is not None
    return str(added.document.id)


async def a_draft_campaign(session: AsyncSession, made: dict[str, str]) -> str:
    campaign = draft_campaign()
    session.add(campaign)
    await session.flush()
    return str(campaign.id)


async def an_admin_account(session: AsyncSession, made: dict[str, str]) -> str:
    return str((await users.add_user(session, "directora@example.edu", StaffRole.admin, "admin-password-1")).id)


async def start(session: AsyncSession, made: dict[str, str]) -> str:
    return "start"


# Every path parameter of every route, and how to store one. One line per new kind of id.
ID_PARAMETERS: dict[str, IdParameter] = {
    "thread_id": IdParameter(a_thread_with_a_file),
    "attachment_id": IdParameter(its_file),
    "phone": IdParameter(a_student, absent=lambda: "+525599990000"),
    "document_id": IdParameter(a_document),
    "campaign_id": IdParameter(a_draft_campaign),
    "user_id": IdParameter(an_admin_account),
    # Not an id: the campaign action, the same word either way (starting would show in the snapshot).
    "action": IdParameter(start, absent=lambda: "start"),
}


def parameters(path: str) -> list[str]:
    return re.findall(r"\{([^}:]+)(?::[^}]*)?\}", path)


def id_routes(app: FastAPI) -> list[tuple[str, str, Permission]]:
    return sorted(
        (method, route.path, min(route.permissions))
        for route in api_routes(app)
        if parameters(route.path)
        for method in route.methods
    )


def test_every_id_parameter_has_a_maker(settings: Settings) -> None:
    unknown = {
        f"{method} {path}: {{{name}}}"
        for method, path, _ in id_routes(create_app(settings))
        for name in parameters(path)
        if name not in ID_PARAMETERS
    }
    assert unknown == set(), (
        "these routes take a parameter the walk cannot fill; add a line to ID_PARAMETERS in "
        "tests/test_id_routes.py saying how to store one"
    )


def test_no_route_that_takes_an_id_is_public(settings: Settings) -> None:
    assert [r for r in id_routes(create_app(settings)) if r[2] in {Permission.public, Permission.vendor}] == []


@dataclass(frozen=True)
class Caller:
    name: str
    # May this caller use a route with this permission on the API (not the console)?
    api: frozenset[Permission]
    console: frozenset[Permission]
    api_refusal: int  # 401 without a key, 403 with one of too little role
    console_refusal: int  # 303 to the sign-in page without a session, 403 with one of too little role


ANONYMOUS = Caller("anonymous", frozenset(), frozenset(), 401, 303)
CLIENT = Caller("client key", frozenset({Permission.client}), frozenset(), 403, 303)
STAFF = Caller("staff key", frozenset({Permission.client, Permission.admin}), frozenset(), 0, 303)
AGENT_USER = Caller("console agent", frozenset(), frozenset({Permission.agent}), 401, 403)


def concrete(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{([^}:]+)(?::[^}]*)?\}", lambda m: values[m.group(1)], path)


async def store_one_of_each(database_url: str) -> dict[str, str]:
    engine = create_engine(database_url)
    made: dict[str, str] = {}
    try:
        async for session in session_scope(create_sessionmaker(engine)):
            for name, parameter in ID_PARAMETERS.items():
                made[name] = await parameter.existing(session, made)
    finally:
        await engine.dispose()
    return made


def what_it_tells(response: httpx.Response, values: dict[str, str]) -> tuple[int, str, str]:
    """Status, body and redirect, with the ids the caller sent put back as names (an echo of the
    caller's own request tells nothing) and the CSRF token of the page left out."""
    body, location = response.text, response.headers.get("location", "")
    for name, value in values.items():
        for written in (value, value.replace("+", "%2B")):
            body, location = body.replace(written, name), location.replace(written, name)
    return response.status_code, re.sub(r'value="[0-9a-f]{64}"', "", body), location


async def walk(
    client: httpx.AsyncClient, caller: Caller, routes: list[tuple[str, str, Permission]], existing: dict[str, str]
) -> list[str]:
    token = await page_token(client) if caller is AGENT_USER else csrf_of(await client.get("/console/login"))
    failures = []
    for method, path, permission in routes:
        on_console = path.startswith("/console")
        if permission in (caller.console if on_console else caller.api):
            continue
        expected = caller.console_refusal if on_console else caller.api_refusal
        answers = []
        for values in (existing, {name: p.absent() for name, p in ID_PARAMETERS.items()}):
            url, headers = concrete(path, values), {"x-csrf-token": token}
            if on_console:
                response = await client.request(method, url, headers=headers, data=FORM | {"csrf_token": token})
            else:
                response = await client.request(method, url, headers=headers, json={})
            answers.append(what_it_tells(response, values))
        status = answers[0][0]
        if status != expected or (on_console and status == 303 and not answers[0][2].startswith("/console/login")):
            failures.append(f"{caller.name}: {method} {path} answered {status}, not {expected}")
        elif answers[0] != answers[1]:
            failures.append(f"{caller.name}: {method} {path} answers an existing id unlike an absent one")
    return failures


@pytest.mark.parametrize("caller", [ANONYMOUS, CLIENT, STAFF, AGENT_USER], ids=lambda caller: caller.name)
async def test_a_caller_who_may_not_use_an_id_route_learns_nothing_and_changes_nothing(
    make_client: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    clean_database: str,
    caller: Caller,
) -> None:
    settings = make_settings(api_keys=[SecretStr(CLIENT_KEY)], staff_api_keys=[SecretStr(STAFF_KEY)])
    await add_account(clean_database, AGENT[0], StaffRole.agent, AGENT[1])
    existing = await store_one_of_each(clean_database)
    keys = {CLIENT: CLIENT_KEY, STAFF: STAFF_KEY}
    async with make_client(settings) as client:
        if caller in keys:
            client.headers["authorization"] = f"Bearer {keys[caller]}"
        if caller is AGENT_USER:
            assert (await sign_in(client, *AGENT)).status_code == 303
        before = await snapshot(clean_database)
        failures = await walk(client, caller, id_routes(create_app(settings)), existing)
    assert failures == []
    assert await snapshot(clean_database) == before
