"""Request ids, access logs, request metrics and the body-size limit, as plain ASGI for a cheap hot path."""

import json
import time
import uuid
from collections.abc import Mapping

import structlog
from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bedel.ops import metrics

log = structlog.get_logger()

# Everything but an upload is a small JSON document.
MAX_BODY_BYTES = 64 * 1024


class BodyTooLarge(HTTPException):
    """An HTTPException so FastAPI's body parsing re-raises it instead of answering 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"the body exceeds {limit} bytes")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, upload_limits: Mapping[str, int]) -> None:
        """`upload_limits`: the paths that take files, each with its largest body; the app declares them."""
        self.app = app
        self.upload_limits = upload_limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        limit = self.upload_limits.get(scope["path"], MAX_BODY_BYTES)
        status = 500
        structlog.contextvars.bind_contextvars(request_id=request_id)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        declared = headers.get(b"content-length", b"")
        try:
            if declared.isdigit() and int(declared) > limit:
                raise BodyTooLarge(limit)
            await self.app(scope, limited_receive, send_with_id)
        except BodyTooLarge:
            status = 413
            await _too_large(send, limit, request_id)
        finally:
            seconds = time.perf_counter() - started
            # The route template, not the path: one series per endpoint, whatever ids the path holds.
            route = scope.get("route")
            metrics.observe_request(scope["method"], getattr(route, "path", metrics.UNROUTED), status, seconds)
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round(seconds * 1000, 1),
            )
            structlog.contextvars.clear_contextvars()


async def _too_large(send: Send, limit: int, request_id: str) -> None:
    body = json.dumps(
        {
            "error": {
                "code": "payload_too_large",
                "message": f"the body exceeds {limit} bytes",
                "field": None,
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
