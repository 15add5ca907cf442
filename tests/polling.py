"""Waiting for something to happen by polling for it, never by sleeping a guessed time."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(check: Callable[[], Awaitable[Any] | Any], *, within_s: float = 15.0) -> None:
    """Wait for background work: pass as soon as `check()` is truthy, fail after `within_s`."""
    deadline = asyncio.get_running_loop().time() + within_s
    pause_s = 0.005
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the background work did not happen in time")
        await asyncio.sleep(pause_s)
        # Quick to notice what happens at once, without a long wait's checks taking the CPU from the work.
        pause_s = min(pause_s * 2, 0.1)
