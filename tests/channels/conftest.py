import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from bedel.config import Settings
from bedel.db import utcnow
from tests.channels.vendors import CHANNEL_SETTINGS


@pytest.fixture
def channel_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**CHANNEL_SETTINGS)


async def eventually(check: Callable[[], Awaitable[Any] | Any], *, within_s: float = 15.0) -> None:
    """Wait for background jobs: pass as soon as `check()` is truthy, fail after `within_s`."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the background work did not happen in time")
        await asyncio.sleep(0.02)


class FakeClock:
    """A clock that moves only when the test says so.

    It starts an hour ahead of the wall clock, so jobs queued at wall-clock time are
    already due by it; what a test measures with it (a burst window) never depends on
    how fast the machine runs the test.
    """

    def __init__(self) -> None:
        self.now = utcnow() + timedelta(hours=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
