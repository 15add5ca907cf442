"""Security headers for console pages, as plain ASGI so error pages and static files get them too."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Only Bedel's own scripts, styles and images; no frames, no plug-ins, forms post only here.
_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        b"form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
# Pages show people's data: not kept by the browser or a proxy after signing out.
_NO_STORE = (b"cache-control", b"no-store")


class ConsoleHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/console" or path.startswith("/console/")):
            await self.app(scope, receive, send)
            return
        extra = _HEADERS if path.startswith("/console/static/") else [*_HEADERS, _NO_STORE]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
