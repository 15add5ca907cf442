"""Every route says who may call it (tests/test_id_routes.py walks the routes that take an id)."""

from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount

from bedel.app import create_app
from bedel.auth import DECLARED, Permission
from bedel.config import Settings


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
