"""Every route says who may call it, and a caller who may not call a route that takes an id
learns nothing about that id."""

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import SecretStr
from starlette.routing import Mount

from bedel.app import create_app
from bedel.auth import DECLARED, Permission
from bedel.config import Settings

CLIENT_KEY = "client-key-0123456789abcdef"
STAFF_KEY = "staff-key-0123456789abcdef"


@dataclass(frozen=True)
class Served:
    path: str
    methods: frozenset[str]
    permissions: frozenset[Permission]  # what its own dependencies (its routers' included) declare


def api_routes(app: FastAPI) -> list[Served]:
    """Every route as served: paths with their routers' prefixes, dependencies with theirs."""
    return [
        Served(
            str(route.path),
            frozenset(route.methods or ()),
            frozenset(DECLARED[d.call] for d in route.dependant.dependencies if d.call in DECLARED),
        )
        for route in iter_route_contexts(app.routes)
        if isinstance(route.original_route, APIRoute)
    ]


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


def test_every_route_declares_exactly_one_permission(app: FastAPI) -> None:
    undeclared = {
        f"{sorted(route.methods)} {route.path}": sorted(route.permissions)
        for route in api_routes(app)
        if len(route.permissions) != 1
    }
    assert undeclared == {}


def test_what_is_not_a_route_of_ours_is_the_documentation_or_static_files(app: FastAPI) -> None:
    others = [route for route in iter_route_contexts(app.routes) if not isinstance(route.original_route, APIRoute)]
    documentation = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    for route in others:
        if isinstance(route.original_route, Mount):
            assert route.path == "/console/static"
        else:
            assert route.path in documentation, route.path


def test_the_permissions_are_the_ones_each_part_needs(app: FastAPI) -> None:
    declared = {(route.path, method): min(route.permissions) for route in api_routes(app) for method in route.methods}
    assert declared[("/chat", "POST")] is Permission.client
    assert declared[("/healthz", "GET")] is Permission.public
    assert declared[("/webhooks/whatsapp", "POST")] is Permission.vendor
    assert declared[("/console/login", "POST")] is Permission.public
    assert declared[("/console/users", "GET")] is Permission.admin
    assert declared[("/console", "GET")] is Permission.agent
    # Everything else of the API is for staff keys.
    api = {key: value for key, value in declared.items() if not key[0].startswith(("/console", "/webhooks"))}
    others = {key for key, value in api.items() if value is not Permission.admin}
    assert others == {("/chat", "POST"), ("/healthz", "GET"), ("/readyz", "GET")}


def _with_ids(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), path)


async def test_a_client_key_learns_nothing_from_any_staff_route_that_takes_an_id(
    make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(api_keys=[SecretStr(CLIENT_KEY)], staff_api_keys=[SecretStr(STAFF_KEY)])
    routes = [
        (route.path, method)
        for route in api_routes(create_app(settings))
        if "{" in route.path and route.permissions == {Permission.admin} and not route.path.startswith("/console")
        for method in route.methods
    ]
    assert len(routes) >= 10
    async with make_client(settings) as client:
        for path, method in routes:
            answers = []
            for headers in ({"authorization": f"Bearer {CLIENT_KEY}"}, {}):
                # Two different ids: the answer cannot depend on whether one exists.
                for _ in range(2):
                    response = await client.request(method, _with_ids(path), headers=headers)
                    answers.append((response.status_code, response.json()["error"]["code"]))
            assert answers[:2] == [(403, "forbidden")] * 2, (method, path, answers)
            assert answers[2:] == [(401, "unauthorized")] * 2, (method, path, answers)
