"""Who may call each route, and API keys: client keys may only call /chat; staff keys may call
everything but the console, which has accounts of its own (console/auth.py)."""

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from bedel.dependencies import get_state
from bedel.errors import Forbidden, Unauthorized

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_bearer = HTTPBearer(auto_error=False, description="A client or staff API key")


class Permission(StrEnum):
    """Who may call a route. Every route declares exactly one, through one of the dependencies
    below or the console's roles; tests/test_permissions.py walks the route table for it."""

    public = "public"  # anyone: health checks, the console's sign-in page
    vendor = "vendor"  # a webhook: the handler checks the vendor's signature over the body
    client = "client"  # a client or staff API key
    agent = "agent"  # a console user of any role
    admin = "admin"  # a staff API key, or a console admin


F = TypeVar("F", bound=Callable[..., Any])
# The dependency functions that declare a permission, and which one.
DECLARED: dict[Callable[..., Any], Permission] = {}


def declares(permission: Permission) -> Callable[[F], F]:
    def register(dependency: F) -> F:
        DECLARED[dependency] = permission
        return dependency

    return register


@declares(Permission.public)
async def anyone() -> None:
    """Anyone may call: nothing to check."""


@declares(Permission.vendor)
async def vendor_signed() -> None:
    """Only a vendor may call: the handler verifies the signature, which covers the raw body a
    dependency would have to read before it."""


Public = Depends(anyone)
VendorSigned = Depends(vendor_signed)


class Role(StrEnum):
    client = "client"
    staff = "staff"


@dataclass(frozen=True)
class Caller:
    role: Role
    # A digest, never the key itself: it names the key in rate limits and logs.
    key_id: str


def _matches(token: str, keys: list[SecretStr]) -> bool:
    # Compare against every key so timing does not reveal which one nearly matched.
    found = False
    for key in keys:
        found |= hmac.compare_digest(token.encode(), key.get_secret_value().encode())
    return found


@declares(Permission.client)
async def identify_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    settings = get_state(request).settings
    if not settings.auth_enabled:
        # Without keys every caller is staff, so only this machine may call.
        if request.client is not None and request.client.host not in _LOOPBACK:
            raise Unauthorized("no API keys are configured, so only this machine may call; set BEDEL_API_KEYS")
        return Caller(Role.staff, "local")
    if credentials is None:
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
    key_id = hashlib.sha256(credentials.credentials.encode()).hexdigest()[:16]
    if _matches(credentials.credentials, settings.staff_api_keys):
        return Caller(Role.staff, key_id)
    if _matches(credentials.credentials, settings.api_keys):
        return Caller(Role.client, key_id)
    raise Unauthorized("unknown API key")


@declares(Permission.admin)
async def require_staff(caller: Annotated[Caller, Depends(identify_caller)]) -> Caller:
    if caller.role is not Role.staff:
        raise Forbidden("this endpoint needs a staff API key")
    return caller


CurrentCaller = Annotated[Caller, Depends(identify_caller)]
StaffOnly = Depends(require_staff)
