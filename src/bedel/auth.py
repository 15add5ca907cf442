"""Who may call each route, and who is calling: client keys may only call /chat; staff keys may
call everything but the console, which has accounts of its own (console/auth.py)."""

import getpass
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
from bedel.keys.models import KeyRole
from bedel.keys.service import find_key

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


class CallerKind(StrEnum):
    key = "key"  # an API key, kept in the database or given in settings
    console = "console"  # a user signed in to the console
    command = "command"  # the `bedel` command, run on the server


@dataclass(frozen=True)
class Caller:
    """Whoever does something: what the audit log records as "who", and what rate limits count.

    `role` is `client` or `staff` for a key (bedel.keys.models.KeyRole), `agent` or `admin` for
    a console user, `admin` for the command line.
    """

    kind: CallerKind
    # The key's name, the console user's email, or the system user who ran the command.
    name: str
    role: str
    # The client's address; None on the command line.
    address: str | None
    # A digest, never the key itself: it names the key in rate limits.
    key_id: str = ""

    @classmethod
    def command_line(cls) -> "Caller":
        return cls(CallerKind.command, getpass.getuser(), "admin", None)


def client_address(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


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
    """Keys given in settings are checked in memory; any other key in the database, on every
    request, so a revoked key is refused at once on every replica."""
    state = get_state(request)
    settings, address = state.settings, client_address(request)
    if credentials is not None:
        token = credentials.credentials
        key_id = hashlib.sha256(token.encode()).hexdigest()[:16]
        for role, keys in ((KeyRole.staff, settings.staff_api_keys), (KeyRole.client, settings.api_keys)):
            if _matches(token, keys):
                return Caller(CallerKind.key, f"settings key {key_id[:8]}", role, address, key_id)
        async with state.sessionmaker() as session:
            key = await find_key(session, token, state.clock())
            await session.commit()
        if key is not None:
            return Caller(CallerKind.key, key.name, key.role, address, key_id)
        if settings.auth_enabled or await state.keys_made.ask(state.sessionmaker):
            raise Unauthorized("unknown API key")
    elif settings.auth_enabled or await state.keys_made.ask(state.sessionmaker):
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
    # Without keys every caller is staff, so only this machine may call.
    if address is not None and address not in _LOOPBACK:
        raise Unauthorized(
            "no API keys are configured, so only this machine may call; "
            "create one with `bedel keys create` or set BEDEL_API_KEYS"
        )
    return Caller(CallerKind.key, "local", KeyRole.staff, address, "local")


@declares(Permission.admin)
async def require_staff(caller: Annotated[Caller, Depends(identify_caller)]) -> Caller:
    if caller.role != KeyRole.staff:
        raise Forbidden("this endpoint needs a staff API key")
    return caller


CurrentCaller = Annotated[Caller, Depends(identify_caller)]
StaffOnly = Depends(require_staff)
StaffCaller = Annotated[Caller, StaffOnly]
