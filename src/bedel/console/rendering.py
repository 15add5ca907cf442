"""Pages: the templates, the sections of the menu, and the answers that move the browser on."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, StrictUndefined

from bedel.console.auth import LANGUAGE_COOKIE, PRE_SESSION_COOKIE, csrf_token, may_open, set_console_cookie
from bedel.console.catalogue import Language, strings
from bedel.db import as_utc
from bedel.users.models import StaffRole, StaffUser

# htmx and the stylesheet: see static/README.md.
STATIC_DIR = Path(__file__).with_name("static")
# StrictUndefined: a word missing from the catalogue fails the page (and its test) instead of showing nothing.
TEMPLATES = Jinja2Templates(
    env=Environment(loader=PackageLoader("bedel.console"), autoescape=True, undefined=StrictUndefined, trim_blocks=True)
)
TEMPLATES.env.filters["utc"] = as_utc


@dataclass(frozen=True)
class Section:
    path: str
    label: str  # catalogue keys
    summary: str
    role: StaffRole  # the least role that may open it


# The menu, in order. A new page adds its line here; the menu shows each role what it may open.
SECTIONS = (
    Section("/console/inbox", "nav_inbox", "home_inbox", StaffRole.agent),
    Section("/console/conversations", "nav_conversations", "home_conversations", StaffRole.agent),
    Section("/console/dashboard", "nav_dashboard", "home_dashboard", StaffRole.admin),
    Section("/console/campaigns", "nav_campaigns", "home_campaigns", StaffRole.admin),
    Section("/console/students", "nav_students", "home_students", StaffRole.admin),
    Section("/console/documents", "nav_documents", "home_documents", StaffRole.admin),
    Section("/console/try", "nav_try", "home_try", StaffRole.admin),
    Section("/console/users", "nav_users", "home_users", StaffRole.admin),
    Section("/console/audit", "nav_audit", "home_audit", StaffRole.admin),
)


def page_language(request: Request) -> Language:
    chosen = request.cookies.get(LANGUAGE_COOKIE, "")
    return Language(chosen) if chosen in Language.__members__ else Language.es


def render(
    request: Request,
    template: str,
    *,
    user: StaffUser | None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    here: str | None = None,
    **context: Any,
) -> Response:
    """`here` is the page's own address, for the language switch and the address bar: a page
    shown in answer to a form is not at the form's address."""
    here = here or (request.url.path if request.method == "GET" else "/console")
    if request.method != "GET":
        headers = (headers or {}) | {"HX-Push-Url": here}
    language = page_language(request)
    token = csrf_token(request)
    sections = [section for section in SECTIONS if user is not None and may_open(user, section.role)]
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "t": strings(language),
            "lang": language.value,
            "csrf_token": token,
            "user": user,
            "sections": sections,
            "here": here,
        }
        | context,
        status_code=status_code,
        headers=headers,
    )
    new_pre_session: str | None = getattr(request.state, "new_pre_session", None)
    if new_pre_session is not None:
        set_console_cookie(request, response, PRE_SESSION_COOKIE, new_pre_session)
    return response


def see_other(url: str) -> Response:
    """After a form: the browser (or htmx, which follows it) loads `url`."""
    return RedirectResponse(url, status_code=303)


def reload_at(request: Request, url: str) -> Response:
    """A full page load of `url`: after signing in or out, or a change of language, the page's
    <html lang> and the token on <body> change too, which an htmx swap would keep."""
    if request.headers.get("HX-Request"):
        return Response(headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def safe_next(url: str | None) -> str:
    """A console path to go back to; anything else (another site, //host) goes home."""
    if not url:
        return "/console"
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or "\\" in url or not (url == "/console" or url.startswith("/console/")):
        return "/console"
    return url
