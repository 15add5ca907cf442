"""Who is using the console: the session cookie, the role each page needs, and CSRF tokens.

A role is checked here, on the server, for every page and every action; templates only
leave out what a role may not use. Every console route is built from `console_router()`,
so no form can forget its CSRF check.
"""

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from bedel.auth import Caller, CallerKind, Permission, client_address, declares
from bedel.config import Environment
from bedel.dependencies import DBSession, get_state
from bedel.errors import Forbidden, Unauthorized
from bedel.users.models import StaffRole, StaffUser
from bedel.users.sessions import LoginPolicy, resume_session

SESSION_COOKIE = "bedel_session"
# Before signing in there is no session to bind a token to: this random cookie stands in.
PRE_SESSION_COOKIE = "bedel_csrf"
LANGUAGE_COOKIE = "bedel_lang"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
COOKIE_PATH = "/console"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# An admin may do everything an agent may.
_RANK = {StaffRole.agent: 1, StaffRole.admin: 2}


class LoginRequired(Unauthorized):
    code = "login_required"


class CSRFFailed(Forbidden):
    code = "csrf_failed"


def csrf_token(request: Request) -> str:
    """The token this browser's forms carry: derived from its session cookie, or from its
    pre-session cookie (made here when it has none, and set by the page that renders it)."""
    secret = request.cookies.get(SESSION_COOKIE) or request.cookies.get(PRE_SESSION_COOKIE)
    if secret is None:
        secret = request.state.new_pre_session = secrets.token_urlsafe(32)
    return _derive(secret)


def _derive(secret: str) -> str:
    # A different digest from the stored session hash, so the database reveals no token.
    return hashlib.sha256(b"csrf:" + secret.encode()).hexdigest()


async def check_csrf(request: Request) -> None:
    """Refuse (403) a request that changes something without this browser's token, sent as
    the X-CSRF-Token header (htmx) or the csrf_token form field."""
    if request.method in SAFE_METHODS:
        return
    secret = request.cookies.get(SESSION_COOKIE) or request.cookies.get(PRE_SESSION_COOKIE)
    sent = [request.headers.get(CSRF_HEADER)]
    if request.headers.get("content-type", "").startswith(("application/x-www-form-urlencoded", "multipart/")):
        field = (await request.form()).get(CSRF_FIELD)
        sent.append(field if isinstance(field, str) else None)
    expected = _derive(secret) if secret else None
    if expected is None or not any(token and hmac.compare_digest(token, expected) for token in sent):
        raise CSRFFailed("the form's CSRF token is missing or wrong; reload the page")


def console_router() -> APIRouter:
    """A router of console pages: under /console, CSRF-checked, out of the API's documentation."""
    return APIRouter(prefix="/console", dependencies=[Depends(check_csrf)], include_in_schema=False)


async def current_staff(request: Request, session: DBSession) -> StaffUser:
    token = request.cookies.get(SESSION_COOKIE)
    state = get_state(request)
    user = (
        await resume_session(session, token, LoginPolicy.from_settings(state.settings), state.clock())
        if token
        else None
    )
    if user is None:
        raise LoginRequired("sign in to use the console")
    return user


def require_console_role(role: StaffRole) -> Callable[..., Awaitable[StaffUser]]:
    """A dependency giving the signed-in user if their role reaches `role` (403 otherwise)."""

    @declares(Permission(role.value))
    async def signed_in_with_role(user: Annotated[StaffUser, Depends(current_staff)]) -> StaffUser:
        if not may_open(user, role):
            raise Forbidden(f"this page needs the {role} role")
        return user

    return signed_in_with_role


def console_caller(request: Request, user: StaffUser) -> Caller:
    """The signed-in user as the audit log names them."""
    return Caller(CallerKind.console, user.email, user.role, client_address(request))


def may_open(user: StaffUser, role: StaffRole) -> bool:
    """Whether the user's role reaches `role`."""
    return _RANK[StaffRole(user.role)] >= _RANK[role]


AnyStaff = Annotated[StaffUser, Depends(require_console_role(StaffRole.agent))]
AdminOnly = Annotated[StaffUser, Depends(require_console_role(StaffRole.admin))]


def set_console_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None = None) -> None:
    """HttpOnly, SameSite=Lax, only sent to /console, and Secure outside development."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=get_state(request).settings.env is not Environment.development,
    )
