"""Signed webhook deliveries with a value of the wrong type, size or shape anywhere in them: each
is acknowledged or refused with a 4xx, never a 5xx (the vendor would retry it forever), and a
refused one stores nothing."""

import copy
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bedel.config import Settings
from bedel.db import create_engine, create_sessionmaker
from bedel.jobs.models import Job
from tests.channels.vendors import (
    CHANNEL_SETTINGS,
    image_message,
    signed,
    status_update,
    text_message,
    twilio_form,
    twilio_signed,
    twilio_status,
)

WA_ID = "5215512345678"
# What a careless or hostile sender puts where a value belongs.
ODD_VALUES: list[Any] = [None, True, 0, -1, 2**70, 1.5e308, "", "x" * 5000, "\x00\ud7ff", [], {}, [None], {"a": {}}]
ODD_FORM_VALUES = ["", "-1", "99999999999999999999999", "x" * 5000, "whatsapp:", "\x00", "%00", "NaN"]


def paths(node: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every place in a JSON document: each key's value and each list item, nested ones too."""
    children: list[tuple[str | int, Any]] = []
    if isinstance(node, dict):
        children = list(node.items())
    elif isinstance(node, list):
        children = list(enumerate(node))
    for key, child in children:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


def replaced(document: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    parent: Any = changed
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return changed


def mutants(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for path in paths(document):
        for value in ODD_VALUES:
            yield replaced(document, path, value)


@pytest.fixture
async def hook_client(make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    # Jobs stay queued: only what the webhook itself does is under test.
    async with make_client(make_settings(**CHANNEL_SETTINGS | {"jobs_in_process": False})) as client:
        yield client


async def stored_jobs(database_url: str) -> int:
    engine = create_engine(database_url)
    async with create_sessionmaker(engine)() as session:
        count = await session.scalar(select(func.count()).select_from(Job))
    await engine.dispose()
    return count or 0


@pytest.mark.parametrize(
    "delivery",
    [
        text_message(WA_ID, "hola", "wamid.HBgLNTIxNTUxMjM0NTY3OBUCABIYFDNBMDk"),
        image_message(WA_ID, "wamid.HBgLNTIxNTUxMjM0NTY3OBUCABIYFDNBMDm"),
        status_update(WA_ID, "wamid.HBgLNTIxNTUxMjM0NTY3OBUCABIYFDNBMDn", "read"),
    ],
    ids=["text", "image", "status"],
)
async def test_whatsapp_never_answers_5xx_and_a_refusal_stores_nothing(
    hook_client: httpx.AsyncClient, clean_database: str, delivery: dict[str, Any]
) -> None:
    failures = []
    for mutant in mutants(delivery):
        before = await stored_jobs(clean_database)
        body, headers = signed(mutant)
        response = await hook_client.post("/webhooks/whatsapp", content=body, headers=headers)
        if response.status_code >= 500:
            failures.append((response.status_code, body[:300]))
        elif response.status_code >= 400 and await stored_jobs(clean_database) != before:
            failures.append((response.status_code, b"stored after a refusal: " + body[:300]))
    assert failures == []


@pytest.mark.parametrize(
    "form",
    [twilio_form(WA_ID, "hola", "SM" + "b" * 32), twilio_status("SM" + "c" * 32, "delivered")],
    ids=["message", "status"],
)
async def test_twilio_never_answers_5xx_and_a_refusal_stores_nothing(
    hook_client: httpx.AsyncClient, clean_database: str, form: dict[str, str]
) -> None:
    failures = []
    for field in form:
        for value in ODD_FORM_VALUES:
            before = await stored_jobs(clean_database)
            body, headers = twilio_signed(form | {field: value})
            response = await hook_client.post("/webhooks/twilio", content=body, headers=headers)
            if response.status_code >= 500:
                failures.append((response.status_code, field, value[:20]))
            elif response.status_code >= 400 and await stored_jobs(clean_database) != before:
                failures.append((response.status_code, field, "stored after a refusal"))
    assert failures == []
