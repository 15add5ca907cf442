"""API keys: client keys may only call /chat; staff keys may call everything."""

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from bedel.dependencies import get_state
from bedel.errors import Forbidden, Unauthorized

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_bearer = HTTPBearer(auto_error=False, description="A client or staff API key")


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


async def require_staff(caller: Annotated[Caller, Depends(identify_caller)]) -> Caller:
    if caller.role is not Role.staff:
        raise Forbidden("this endpoint needs a staff API key")
    return caller


CurrentCaller = Annotated[Caller, Depends(identify_caller)]
StaffOnly = Depends(require_staff)
