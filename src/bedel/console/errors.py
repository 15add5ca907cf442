"""Errors on console routes are pages, not the API's JSON: 401 goes to the sign-in page."""

import json
from urllib.parse import quote

from fastapi import Request, Response

from bedel.console.catalogue import strings
from bedel.console.rendering import page_language, reload_at, render
from bedel.exception_handlers import Handler, JSONHandler


def is_console(request: Request) -> bool:
    return request.url.path == "/console" or request.url.path.startswith("/console/")


def console_error_page(request: Request, status: int, code: str) -> Response:
    if status == 401:
        # Back to the page after signing in; after an action, to the home page.
        back = quote(request.url.path) if request.method == "GET" else "/console"
        return reload_at(request, f"/console/login?next={back}")
    words = strings(page_language(request))
    message = words.get(f"error_{code}") or words.get(f"error_{status}") or words["error_500"]
    return render(request, "error.html", user=None, status_code=status, status=status, message=message)


def pages_on_console(handler: JSONHandler) -> Handler:
    """The API's handler decides the status and code; on a console route they become a page."""

    async def handle(request: Request, exc: Exception) -> Response:
        response = await handler(request, exc)
        if not is_console(request):
            return response
        code = json.loads(bytes(response.body))["error"]["code"]
        page = console_error_page(request, response.status_code, code)
        if "retry-after" in response.headers:
            page.headers["retry-after"] = response.headers["retry-after"]
        return page

    return handle
