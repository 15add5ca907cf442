"""A free port on this machine, for the fake servers and Bedel processes of the tests and of bench/,
and a fake server served on one.

A plain module, not a fixture, so bench scripts import it too (after putting the repository on `sys.path`).
"""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    """A port nobody listens on now; the caller binds it soon after, so another process rarely takes it first."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serving(app: Any, port: int, **config: Any) -> AsyncIterator[None]:
    """`app` (ASGI) served on 127.0.0.1:`port` until the block ends; `config` goes to uvicorn."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        await task
