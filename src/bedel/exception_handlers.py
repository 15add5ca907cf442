"""One JSON error shape for every failure: {"error": {"code", "message", "field"}}."""

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from asyncpg import PostgresConnectionError
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from bedel.db import is_database_outage
from bedel.errors import BedelError

log = structlog.get_logger()

# How long a client is asked to wait while the database is out of reach; the pool reconnects by itself.
DATABASE_RETRY_AFTER_S = 5
DATABASE_UNAVAILABLE = "the database is unreachable for a moment; try again shortly"

JSONHandler = Callable[[Request, Exception], Awaitable[JSONResponse]]
Handler = Callable[[Request, Exception], Awaitable[Response]]


def error_response(
    status: int, code: str, message: str, field: str | None = None, retry_after: int | None = None
) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    body = {"error": {"code": code, "message": message, "field": field}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _bedel_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BedelError)
    return error_response(exc.status, exc.code, exc.message, exc.field, exc.retry_after)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    error: dict[str, Any] = exc.errors()[0]
    loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
    field = ".".join(loc) or None
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid request")).removeprefix("Value error, ")
    match kind:
        case "json_invalid":
            code, message, field = "invalid_json", "the body is not valid JSON", None
        case "extra_forbidden":
            code, message = "unknown_field", f"unknown field '{field}'"
        case "missing" if field is None:
            code, message = "missing_body", "a JSON body is required"
        case "missing":
            code, message = "missing_field", f"'{field}' is required"
        case _:
            code = f"invalid_{loc[-1]}" if loc else "invalid_request"
            if field:
                message = f"{field}: {message}"
    return error_response(422, code, message, field)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled_error", exc_info=exc)
    return error_response(500, "internal_error", "unexpected error; it has been logged")


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """503 while the database is out of reach, so clients and vendors retry; any other database error is a 500.

    Handled here rather than by the catch-all, which Starlette re-raises to the server after answering.
    The log names the error's type only: a statement's text is no business of the log reader's.
    """
    if not is_database_outage(exc):
        return await _unexpected_error(request, exc)
    log.warning("database_unavailable", error=type(exc).__name__, path=request.url.path)
    return error_response(
        503,
        "database_unavailable",
        DATABASE_UNAVAILABLE,
        retry_after=DATABASE_RETRY_AFTER_S,
    )


def install_exception_handlers(app: FastAPI, render: Callable[[JSONHandler], Handler]) -> None:
    """`render` turns each JSON handler into the one installed (the console shows its errors as pages)."""
    app.add_exception_handler(BedelError, render(_bedel_error))
    app.add_exception_handler(RequestValidationError, render(_validation_error))
    app.add_exception_handler(StarletteHTTPException, render(_http_error))
    for outage in (DBAPIError, PoolTimeout, ConnectionError, PostgresConnectionError):
        app.add_exception_handler(outage, render(_database_error))
    app.add_exception_handler(Exception, render(_unexpected_error))
