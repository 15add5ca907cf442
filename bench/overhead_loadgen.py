"""The load generator, run as its own process (`chat_overhead.py --loadgen SPEC`).

A bare HTTP/1.1 keep-alive client on uvloop that spends about 0.1-0.3 ms of CPU per request (a few
times less than httpx), so the server under test keeps a core to itself and the client is never the
bottleneck. It reads the CPU time of the processes under test at the edges of the measured window.
"""

import asyncio
import contextlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from overhead_cpu import machine_busy_s, process_cpu_s
from overhead_workload import HOST, QUESTIONS, phone_for


class Connection:
    """One keep-alive HTTP/1.1 connection with just enough parsing for JSON answers."""

    def __init__(self, port: int, api_key: str | None) -> None:
        self.port = port
        self.authorization = f"Authorization: Bearer {api_key}\r\n" if api_key else ""
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        reused = self.writer is not None
        try:
            return await self._post(path, body)
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as exc:
            await self.close()
            nothing_read = not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial
            if not (reused and nothing_read):
                raise
            # The server closed an idle keep-alive connection: what every HTTP client does.
            return await self._post(path, body)

    async def _post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.connect()
        assert self.reader is not None and self.writer is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
            f"{self.authorization}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        if "content-length" in headers:
            payload = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            payload = await self._read_chunked()
        else:
            payload = await self.reader.read()
            headers["connection"] = "close"
        if headers.get("connection") == "close":
            await self.close()
        return status, payload

    async def _read_chunked(self) -> bytes:
        assert self.reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await self.reader.readexactly(size + 2)
            if size == 0:
                return b"".join(parts)
            parts.append(chunk[:-2])


@dataclass
class Tally:
    """Every completed request: when it ended, how long it took, whether it failed."""

    ends: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    failed: list[bool] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0

    async def ask(self, conn: Connection, path: str, phone: str, question: str) -> None:
        body = json.dumps({"phone": phone, "question": question}).encode()
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        started = time.perf_counter()
        try:
            status, payload = await conn.post(path, body)
            error = None if status == 200 and b'"answer"' in payload else f"HTTP {status}: {payload[:400]!r}"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            await conn.close()
            error = f"{type(exc).__name__}: {exc}"
        ended = time.perf_counter()
        self.in_flight -= 1
        self.ends.append(ended)
        self.latencies.append(ended - started)
        self.failed.append(error is not None)
        if error is not None:
            if len(self.error_samples) < 5:
                self.error_samples.append(error)
            await asyncio.sleep(0.05)  # a dead server must not turn the client into a busy loop


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


def snapshot(watch: dict[str, int]) -> dict[str, Any]:
    return {
        "t": time.perf_counter(),
        "cpu": {name: process_cpu_s(pid) for name, pid in watch.items()},
        "self": process_cpu_s(os.getpid()),
        "machine": machine_busy_s(),
    }


def summarize(tally: Tally, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    start, end = before["t"], after["t"]
    window = [i for i, ended in enumerate(tally.ends) if start <= ended <= end]
    latencies = sorted(tally.latencies[i] * 1000 for i in window)
    return {
        "window_s": end - start,
        "completed": len(window),
        "ok": sum(1 for i in window if not tally.failed[i]),
        "errors_total": sum(tally.failed),
        "requests_total": len(tally.ends),
        "error_samples": tally.error_samples,
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "max_ms": latencies[-1] if latencies else math.nan,
        "cpu_s": {name: after["cpu"][name] - before["cpu"][name] for name in before["cpu"]},
        "loadgen_cpu_s": after["self"] - before["self"],
        "machine_busy_s": after["machine"] - before["machine"],
        "peak_in_flight": tally.peak_in_flight,
    }


async def drive_clients(spec: dict[str, Any]) -> dict[str, Any]:
    """`clients` loops, each asking question after question for warm-up + duration seconds."""
    tally, stopping = Tally(), asyncio.Event()

    async def client(index: int) -> None:
        conn, asked = Connection(spec["port"], spec["api_key"]), 0
        try:
            while not stopping.is_set():
                conversation, turn = divmod(asked, len(QUESTIONS))
                await tally.ask(conn, spec["path"], phone_for(spec["run"], index, conversation), QUESTIONS[turn])
                asked += 1
        finally:
            await conn.close()

    tasks = [asyncio.create_task(client(i)) for i in range(spec["clients"])]
    await asyncio.sleep(spec["warmup_s"])
    before = snapshot(spec["watch"])
    await asyncio.sleep(spec["duration_s"])
    after = snapshot(spec["watch"])
    stopping.set()  # let each client finish the request it is waiting for, uncounted
    _, pending = await asyncio.wait(tasks, timeout=30)
    for task in pending:
        task.cancel()
    return summarize(tally, before, after)


async def drive_conversations(spec: dict[str, Any]) -> dict[str, Any]:
    """`conversations` phones, started evenly over `ramp_s`, each asking `questions` in turn."""
    tally, count, ramp = Tally(), spec["conversations"], spec["ramp_s"]
    conns = [Connection(spec["port"], spec["api_key"]) for _ in range(count)]
    await asyncio.gather(*(conn.connect() for conn in conns))

    async def conversation(index: int, started: float) -> None:
        await asyncio.sleep(max(0.0, started + index * ramp / count - time.perf_counter()))
        for turn in range(spec["questions"]):
            await tally.ask(conns[index], spec["path"], phone_for(spec["run"], index, 0), QUESTIONS[turn])

    before = snapshot(spec["watch"])
    await asyncio.wait_for(
        asyncio.gather(*(conversation(i, before["t"]) for i in range(count))), timeout=spec["timeout_s"]
    )
    after = snapshot(spec["watch"])
    await asyncio.gather(*(conn.close() for conn in conns))
    return summarize(tally, before, after)


def loadgen_main(spec_json: str) -> None:
    spec = json.loads(spec_json)
    driver = drive_clients if spec["mode"] == "clients" else drive_conversations
    try:
        import uvloop  # optional: the stdlib loop works too, at a higher cost per request

        result = uvloop.run(driver(spec))
    except ImportError:
        result = asyncio.run(driver(spec))
    json.dump(result, sys.stdout)
