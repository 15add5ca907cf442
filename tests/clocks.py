"""Clocks that move only when the test says so, instead of tests sleeping on the wall clock."""

import time
from datetime import datetime, timedelta

from bedel.db import utcnow


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


class BreakerClock:
    """Stands in for the `time` module the LLM circuit breaker (purgatory) reads, which takes no clock:
    the breaker's reset time passes when the test advances it."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
