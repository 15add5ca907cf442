"""Users (admins only): add an account, disable or enable it, reset its password."""

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Form, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.audit import service as audit
from bedel.audit.models import Action
from bedel.console.auth import AdminOnly, console_caller, console_router
from bedel.console.catalogue import strings
from bedel.console.rendering import page_language, render, see_other
from bedel.dependencies import DBSession
from bedel.errors import BedelError
from bedel.users import service
from bedel.users.models import StaffRole, StaffUser

router = console_router()

PAGE = "/console/users"
NOTICES = ("added", "disabled", "enabled", "password")


@router.get("/users")
async def users_page(
    request: Request,
    session: DBSession,
    admin: AdminOnly,
    notice: Annotated[str | None, Query()] = None,
    email: Annotated[str, Query(max_length=254)] = "",
) -> Response:
    return await _page(request, session, admin, notice=(notice, email) if notice in NOTICES else None)


@router.post("/users")
async def add_user(
    request: Request,
    session: DBSession,
    admin: AdminOnly,
    email: Annotated[str, Form(max_length=254)] = "",
    role: Annotated[StaffRole, Form()] = StaffRole.agent,
    password: Annotated[str, Form(max_length=2048)] = "",
) -> Response:
    try:
        user = await service.add_user(session, email, role, password)
    except BedelError as exc:
        return await _page(request, session, admin, error=exc, form={"email": email, "role": role})
    caller = console_caller(request, admin)
    await audit.record(session, caller, Action.user_add, target=user.email, detail={"role": role})
    return _done("added", user)


@router.post("/users/{user_id}/disable")
async def disable_user(request: Request, session: DBSession, admin: AdminOnly, user_id: uuid.UUID) -> Response:
    return await _change(request, session, admin, user_id, service.disable_user, Action.user_disable, "disabled")


@router.post("/users/{user_id}/enable")
async def enable_user(request: Request, session: DBSession, admin: AdminOnly, user_id: uuid.UUID) -> Response:
    return await _change(request, session, admin, user_id, service.enable_user, Action.user_enable, "enabled")


@router.post("/users/{user_id}/password")
async def reset_password(
    request: Request,
    session: DBSession,
    admin: AdminOnly,
    user_id: uuid.UUID,
    password: Annotated[str, Form(max_length=2048)] = "",
) -> Response:
    async def reset(session: AsyncSession, user: StaffUser) -> None:
        await service.reset_password(session, user, password)

    return await _change(request, session, admin, user_id, reset, Action.user_password_reset, "password")


async def _change(
    request: Request,
    session: DBSession,
    admin: StaffUser,
    user_id: uuid.UUID,
    change: Callable[[AsyncSession, StaffUser], Awaitable[None]],
    action: Action,
    notice: str,
) -> Response:
    """Make `change` to an account, record it as `action` and show the page with `notice`; a refusal shows why."""
    try:
        user = await service.get_user(session, user_id)
        await change(session, user)
    except BedelError as exc:
        return await _page(request, session, admin, error=exc)
    await audit.record(session, console_caller(request, admin), action, target=user.email)
    return _done(notice, user)


def _done(notice: str, user: StaffUser) -> Response:
    return see_other(f"{PAGE}?{urlencode({'notice': notice, 'email': user.email})}")


async def _page(
    request: Request,
    session: DBSession,
    admin: StaffUser,
    *,
    notice: tuple[str, str] | None = None,
    error: BedelError | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    """The page; after a refused action, with the reason and the form as it was typed (never the password)."""
    words = strings(page_language(request))
    users = await service.list_users(session)
    message = None
    # The notice comes back in the address: shown only for an account that exists, so a link
    # someone sends cannot make the page say something else.
    if notice is not None and any(user.email == notice[1] for user in users):
        message = words[f"notice_{notice[0]}"].format(email=notice[1])
    return render(
        request,
        "users.html",
        user=admin,
        status_code=error.status if error else 200,
        here=PAGE,
        users=users,
        notice=message,
        error=words.get(f"error_{error.code}", error.message) if error else None,
        form=form or {"email": "", "role": StaffRole.agent},
        roles=list(StaffRole),
    )
