"""Signing in and out, the language, and the home page."""

import math
from typing import Annotated

from fastapi import Form, Query, Request, Response

from bedel.auth import Public
from bedel.console.auth import (
    LANGUAGE_COOKIE,
    SESSION_COOKIE,
    AnyStaff,
    console_router,
    current_staff,
    set_console_cookie,
)
from bedel.console.catalogue import Language, strings
from bedel.console.rendering import page_language, reload_at, render, safe_next
from bedel.dependencies import DBSession, get_state
from bedel.errors import Unauthorized
from bedel.users.sessions import LoginPolicy, Refusal, Refused, sign_in, sign_out

router = console_router()

ONE_YEAR_S = 365 * 24 * 3600
_REFUSAL_STATUS = {Refusal.wrong: 401, Refusal.locked: 429, Refusal.disabled: 403}


@router.get("/login", dependencies=[Public])
async def login_page(
    request: Request, session: DBSession, next_page: Annotated[str, Query(alias="next")] = ""
) -> Response:
    message = None
    if request.cookies.get(SESSION_COOKIE):
        try:
            await current_staff(request, session)
        except Unauthorized:
            # The cookie outlived its session: say so rather than just ask for the password.
            message = strings(page_language(request))["login_expired"]
        else:
            return reload_at(request, safe_next(next_page))
    return render(request, "login.html", user=None, next=safe_next(next_page), email="", message=message)


@router.post("/login", dependencies=[Public])
async def login(
    request: Request,
    session: DBSession,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next_page: Annotated[str, Form(alias="next")] = "",
) -> Response:
    state = get_state(request)
    address = request.client.host if request.client else "unknown"
    result = await sign_in(session, email, password, address, LoginPolicy.from_settings(state.settings), state.clock())
    if isinstance(result, Refused):
        return _refused(request, result, email, safe_next(next_page))
    response = reload_at(request, safe_next(next_page))
    set_console_cookie(request, response, SESSION_COOKIE, result.token)
    return response


def _refused(request: Request, refused: Refused, email: str, next_page: str) -> Response:
    headers = None
    minutes = None
    if refused.retry_after is not None:
        seconds = math.ceil(refused.retry_after.total_seconds())
        headers = {"Retry-After": str(seconds)}
        minutes = math.ceil(seconds / 60)
    message = strings(page_language(request))[f"login_{refused.reason}"].format(minutes=minutes)
    return render(
        request,
        "login.html",
        user=None,
        status_code=_REFUSAL_STATUS[refused.reason],
        headers=headers,
        here="/console/login",
        next=next_page,
        email=email,
        message=message,
    )


@router.post("/logout", dependencies=[Public])
async def logout(request: Request, session: DBSession) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await sign_out(session, token)
    response = reload_at(request, "/console/login")
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


@router.post("/language", dependencies=[Public])
async def choose_language(
    request: Request,
    lang: Annotated[Language, Form()],
    next_page: Annotated[str, Form(alias="next")] = "",
) -> Response:
    response = reload_at(request, safe_next(next_page))
    set_console_cookie(request, response, LANGUAGE_COOKIE, lang.value, max_age=ONE_YEAR_S)
    return response


@router.get("")
async def home(request: Request, user: AnyStaff) -> Response:
    return render(request, "home.html", user=user)
