"""Several server processes on one port, started together and stopped together.

One Python process serves requests on one core at most, so `bedel serve --workers N`
runs N of them. The parent binds the port and hands the same listening socket to
each worker (the kernel gives each new connection to one of them); it serves no
request itself. SIGTERM or SIGINT to the parent reaches every worker as SIGTERM, so
each one drains like a single `bedel serve` (lifecycle.DrainingServer); the parent
exits once all have. A worker that dies on its own stops the others and the parent
exits 1: the service is up whole or not at all, and whatever supervises it
(systemd, Docker, Kubernetes) restarts it whole.

Workers are spawned, not forked: each starts from a fresh interpreter, so no event
loop, database connection or thread is shared by accident.
"""

import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from types import FrameType

import structlog

EXIT_WORKER_DIED = 1
PR_SET_PDEATHSIG = 1  # linux/prctl.h

log = structlog.get_logger()


def stop_with_parent() -> None:
    """In a worker: have Linux send it SIGTERM if the parent dies (even by SIGKILL), never an orphan on the port."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        # The parent died before the line above could take effect: killed while this worker was still starting.
        raise SystemExit(EXIT_WORKER_DIED)


def run_workers(count: int, target: Callable[[socket.socket], None], listening: socket.socket) -> int:
    """Run `target(listening)` in `count` processes until they stop; the exit status for the parent.

    `target` must be a module-level function (it is pickled by name into each worker).
    """
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=target, args=(listening,), name=f"bedel-worker-{n}") for n in range(count)]
    stopping: list[int] = []

    def stop(sig: int, _: FrameType | None) -> None:
        stopping.append(sig)
        # SIGTERM in every case: on Ctrl-C the workers also get the terminal's SIGINT, and a
        # second SIGINT would make uvicorn skip the graceful shutdown.
        _signal_alive(workers, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for worker in workers:
            worker.start()
        log.info("workers_started", workers=count, pids=[worker.pid for worker in workers])
        died = _wait(workers, stopping)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if died is not None:
        log.error(
            "worker_died",
            message=f"worker process {died.pid} exited with status {died.exitcode}; the others were stopped",
        )
        return EXIT_WORKER_DIED
    log.info("workers_stopped", workers=count)
    return 0


def _wait(workers: Sequence[BaseProcess], stopping: list[int]) -> BaseProcess | None:
    """Until every worker has exited; the first one that exited before any stop signal, if one did."""
    died = None
    running = list(workers)
    while running:
        ended = multiprocessing.connection.wait([worker.sentinel for worker in running])
        for worker in [w for w in running if w.sentinel in ended]:
            worker.join()
            running.remove(worker)
            if not stopping and died is None:
                died = worker
                _signal_alive(running, signal.SIGTERM)
    return died


def _signal_alive(workers: Sequence[BaseProcess], sig: int) -> None:
    for worker in workers:
        if worker.pid is not None and worker.exitcode is None:
            # It may exit between the check and the signal.
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, sig)
