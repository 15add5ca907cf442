"""Pages that follow the database without reloading: a Server-Sent Events stream that says
"changed" whenever a value read from the database changes, and the page fetches the new part.

Polling the database, not a process's memory, so a change made through any replica reaches
every browser. Each poll takes its own short session: the stream holds no connection
between polls. A stream ends after a while and the browser's EventSource opens a new one,
which passes the role check again (a signed-out or disabled account stops getting events).
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Request
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.dependencies import get_state

Version = Callable[[AsyncSession], Awaitable[str]]
# How soon the browser reconnects after a stream ends.
RECONNECT_MS = 2000


def changes_stream(request: Request, version: Version, seen: str) -> StreamingResponse:
    """`event: changed` each time `version` differs from the last value the page saw (`seen`)."""
    return StreamingResponse(
        _changes(request, version, seen),
        media_type="text/event-stream",
        # Proxies must pass each event on as it comes (nginx buffers otherwise).
        headers={"X-Accel-Buffering": "no"},
    )


async def _changes(request: Request, version: Version, seen: str) -> AsyncIterator[str]:
    state = get_state(request)
    poll_s = state.settings.console_live_poll_s
    polls = max(1, round(state.settings.console_live_stream_s / poll_s))
    yield f"retry: {RECONNECT_MS}\n\n"
    for _ in range(polls):
        if await request.is_disconnected() or state.shutting_down:
            return
        async with state.sessionmaker() as session:
            current = await version(session)
        if current != seen:
            seen = current
            yield f"event: changed\ndata: {current}\n\n"
        await asyncio.sleep(poll_s)
