"""Graceful stop: readiness fails at once, requests already sent keep being answered, then uvicorn drains."""

import signal
import time
from collections.abc import Callable
from types import FrameType

import uvicorn

# In-flight requests get this long to finish once the server stops accepting; Kubernetes'
# terminationGracePeriodSeconds must cover BEDEL_SHUTDOWN_DRAIN_S plus this.
GRACE_S = 30


class DrainingServer(uvicorn.Server):
    """uvicorn, with a drain period between SIGTERM and the stop of accepting connections.

    A load balancer keeps sending requests for a few seconds after Kubernetes sends SIGTERM
    (endpoint removal is not instant). So on SIGTERM `on_stop` runs at once (readiness turns
    503), the server keeps answering for `drain_s`, and only then does uvicorn's own graceful
    shutdown start: it stops accepting, lets in-flight requests finish for `GRACE_S`, and runs
    the lifespan's shutdown. SIGINT (Ctrl-C) and a second SIGTERM skip the drain.
    """

    def __init__(self, config: uvicorn.Config, *, drain_s: float, on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self._drain_s = drain_s
        self._on_stop = on_stop
        self._drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_stop()
        if sig == signal.SIGTERM and self._drain_s > 0 and self._drain_until is None:
            self._drain_until = time.monotonic() + self._drain_s
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None and time.monotonic() >= self._drain_until and not self.should_exit:
            super().handle_exit(signal.SIGTERM, None)
        return await super().on_tick(counter)
