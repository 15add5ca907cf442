"""What every package's endpoints may depend on: the core of the app's state, and the request's session.

`bedel.state.AppState`, built by `app.py`, is wiring: it holds every package's objects, so no
package imports it (pyproject's import contracts). A package whose endpoints read more than this
core declares what they read as a `Protocol` extending `CoreState`, and `AppState` lists that
protocol among its bases, so mypy checks that the wiring provides it.
"""

from collections.abc import AsyncIterator
from typing import Annotated, Protocol, cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bedel.config import Settings
from bedel.db import Clock, session_scope
from bedel.jobs.runner import JobRunner
from bedel.keys.service import KeysMade
from bedel.rate_limits import RequestLimiter


class CoreState(Protocol):
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    clock: Clock
    jobs: JobRunner
    limiter: RequestLimiter
    shutting_down: bool
    keys_made: KeysMade


def get_state(request: Request) -> CoreState:
    return cast(CoreState, request.app.state.bedel)


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request owns the transaction: commit on success, roll back on error."""
    async for session in session_scope(get_state(request).sessionmaker):
        yield session


DBSession = Annotated[AsyncSession, Depends(_request_session, scope="function")]
