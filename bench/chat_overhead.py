"""What `POST /chat` costs: requests per second, p50/p99 latency and CPU per request.

Run: `.venv/bin/python bench/chat_overhead.py [--quick] [--no-postgres]` (writes bench/RESULTS.md).

Servers under test, each its own uvicorn process on 127.0.0.1 (one worker, no access log),
started fresh and measured at 1, 16 and 64 concurrent clients:

- `bare`: a FastAPI `POST /chat` that validates the body and echoes it (bench/bare_app.py);
- `naive-llm`: a stateless FastAPI `POST /chat` calling the `openai` SDK (bench/bare_app.py);
- `bedel-offline`: `bedel serve` with the offline engine;
- `bedel-fake-llm`: `bedel serve` against a fake OpenAI-compatible upstream answering at
  once (bench/fake_llm.py), so its CPU minus naive-llm's is Bedel's cost beyond the LLM call;
- the two Bedel variants again on PostgreSQL (extra rows), when 127.0.0.1:5432 answers.

Then the slow-model scenario: hundreds of conversations waiting on a 1.5 s model.

The load generator runs as its own process (this file with `--loadgen`): a bare HTTP/1.1
keep-alive client on uvloop that spends about 0.1-0.3 ms of CPU per request (a few times
less than httpx), so on a 2-core machine the server under test keeps one core to itself and
the client is never the bottleneck (its CPU per request is reported to prove it). It reads the CPU time of
the processes under test from /proc at the edges of the measured window.
"""

import argparse
import asyncio
import contextlib
import csv
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as `python bench/x.py`: the repository goes on the path for the tests' shared helpers.
sys.path.insert(0, str(ROOT))
from tests.ports import free_port  # noqa: E402

BENCH_DIR = ROOT / "bench"
RESULTS_FILE = BENCH_DIR / "RESULTS.md"
OTHER_RESULTS = "\n# Knowledge base"
DEMO_STUDENTS = ROOT / "demo" / "students.csv"
DEMO_KNOWLEDGE = ROOT / "demo" / "knowledge"
BIN_DIR = Path(sys.executable).parent
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

LEVELS = (1, 16, 64)
GOAL_CLIENTS = 16
GOAL_RATIO = 0.40
GOAL_P99_MS = 50.0
CPU_BUDGET_MS = 5.0
SLOW_DELAY_S = 1.5
SLOW_QUESTIONS = 2
SLOW_EXTRA_BUDGET_MS = 50.0
GENEROUS_LIMIT = "1000000/minute"

# A client asks these in order, one conversation (phone) after another; the client's phones
# are its own, so no two clients ever wait on the same conversation.
QUESTIONS = (
    "Hola, necesito ayuda.",
    "¿Cuánto debo de colegiatura y cuándo vence el pago?",
    "¿Cuál es mi promedio?",
    "¿Quién es mi tutor?",
    "Gracias. ¿Cuánto es el recargo si pago tarde?",
)
# The even conversations below this number, per client, belong to students on the roster:
# half the askers are known students whose record goes into the prompt.
KNOWN_CONVERSATIONS = 200
SLOW_RUN, BURST_RUN = 8, 9

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_DATABASE = "bedel_bench"
STUDENT_COLUMNS = ["matricula", "nombre", "telefono", "correo", "carrera", "semestre", "promedio", "adeudo"]
STUDENT_COLUMNS += ["meses_vencidos", "tutor", "beca", "fecha_limite_pago", "estatus"]


def phone_for(run: int, client: int, conversation: int) -> str:
    """A valid Mexico City number (10 national digits) unique to (run, client, conversation)."""
    return f"+5255{run}{client:03d}{conversation:04d}"


# --------------------------------------------------------------------------- CPU accounting


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd (state) on


def _descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents.setdefault(int(_stat_fields(int(entry.name))[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def process_cpu_s(pid: int) -> float:
    """utime + stime of `pid` (every thread), its reaped children and its live descendants."""
    total = 0
    for member in [pid, *_descendants(pid)]:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += sum(int(value) for value in _stat_fields(member)[11:15])
    return total / CLK_TCK


def machine_busy_s() -> float:
    """CPU time every core spent outside idle and iowait, summed."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


class QuietWait:
    """Before each measured run, wait (within a budget) for other processes to leave the CPUs alone.

    This machine is shared (other test suites run on it); the waiting is bounded, and every row
    still reports how much CPU the rest of the machine used during its window.
    """

    def __init__(self, budget_s: float, per_run_s: float = 10.0, threshold_cores: float = 0.25) -> None:
        self.budget_s, self.per_run_s, self.threshold = budget_s, per_run_s, threshold_cores
        self.waited_s = 0.0

    def __call__(self) -> None:
        if self.budget_s <= 0:
            return
        deadline = time.monotonic() + min(self.per_run_s, max(0.0, self.budget_s - self.waited_s))
        while True:
            started, before = time.monotonic(), machine_busy_s()
            time.sleep(1.0)
            load = (machine_busy_s() - before) / (time.monotonic() - started)
            if load < self.threshold or time.monotonic() >= deadline:
                return
            self.waited_s += time.monotonic() - started


# --------------------------------------------------------------------------- load generator


class Connection:
    """One keep-alive HTTP/1.1 connection with just enough parsing for JSON answers."""

    def __init__(self, port: int) -> None:
        self.port = port
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
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
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
        parts = []
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
        conn, asked = Connection(spec["port"]), 0
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
    conns = [Connection(spec["port"]) for _ in range(count)]
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


# --------------------------------------------------------------------------- processes


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Server:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid


class Fleet:
    """Every process this benchmark starts; `stop_all` ends them even after an error."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.servers: list[Server] = []

    def start(self, name: str, cmd: list[str], env: dict[str, str], port: int) -> Server:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                cmd, env=env, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        server = Server(name, popen, port, log)
        self.servers.append(server)
        self._wait_ready(server)
        return server

    def _wait_ready(self, server: Server, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if server.popen.poll() is not None:
                raise RuntimeError(f"{server.name} exited ({server.popen.returncode}):\n{log_tail(server.log)}")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{server.port}/", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # any HTTP answer (404 here) means it serves
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{server.name} did not answer within {timeout_s} s:\n{log_tail(server.log)}")

    def stop(self, server: Server) -> None:
        if server.popen.poll() is None:
            server.popen.send_signal(signal.SIGTERM)
            try:
                server.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.popen.kill()
                server.popen.wait()
        if server in self.servers:
            self.servers.remove(server)

    def stop_all(self) -> None:
        for server in list(reversed(self.servers)):
            self.stop(server)


def uvicorn_cmd(app: str, port: int) -> list[str]:
    return [
        *(sys.executable, "-m", "uvicorn", app, "--app-dir", str(BENCH_DIR)),
        *("--host", HOST, "--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning"),
    ]


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any BEDEL_*/OPENAI_* setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BEDEL_", "OPENAI_", "FAKE_LLM_"))}
    env.update(extra)
    return env


def bedel_env(database_url: str, upstream: Server | None) -> dict[str, str]:
    env = clean_env(
        BEDEL_DATABASE_URL=database_url,
        BEDEL_RATE_LIMIT_PER_PHONE=GENEROUS_LIMIT,
        BEDEL_RATE_LIMIT_PER_KEY=GENEROUS_LIMIT,
        BEDEL_LLM_PROVIDER="offline",
    )
    if upstream is not None:
        env.update(
            BEDEL_LLM_PROVIDER="openai_compatible",
            BEDEL_LLM_BASE_URL=f"http://{HOST}:{upstream.port}/v1",
            BEDEL_LLM_API_KEY="sk-bench",
        )
    return env


def bedel_cli(args: list[str], env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(
        [str(BIN_DIR / "bedel"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"bedel {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def write_roster(path: Path, slow_conversations: int) -> tuple[int, bool]:
    """Synthetic students holding half the benchmark's phones, after demo/students.csv's rows.

    Returns the synthetic count and whether the demo rows are in (one `bedel students import`
    instead of two: every CLI start costs seconds of imports on this machine).
    """
    phones = [
        phone_for(run, client, conversation)
        for run, clients in enumerate(LEVELS, start=1)
        for client in range(clients)
        for conversation in range(0, KNOWN_CONVERSATIONS, 2)
    ]
    phones += [phone_for(run, i, 0) for run in (SLOW_RUN, BURST_RUN) for i in range(0, slow_conversations, 2)]
    careers = ("Derecho", "Medicina", "Arquitectura", "Ingeniería en Sistemas Computacionales", "Psicología")
    demo_rows: list[list[str]] = []
    if DEMO_STUDENTS.exists():
        with DEMO_STUDENTS.open(newline="", encoding="utf-8") as demo:
            header, *demo_rows = list(csv.reader(demo))
        if header != STUDENT_COLUMNS:
            demo_rows = []
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(STUDENT_COLUMNS)
        writer.writerows(demo_rows)
        for n, phone in enumerate(phones):
            writer.writerow(
                [
                    f"B{n:08d}",
                    f"Estudiante {n} Pérez",
                    phone,
                    f"bench{n}@alumnos.example.edu.mx",
                    careers[n % len(careers)],
                    1 + n % 9,
                    f"{7 + (n % 30) / 10:.1f}",
                    f"{(n % 4) * 1500:.2f}",
                    n % 4,
                    "Mtra. Ana Ruiz",
                    "Excelencia 30%" if n % 3 == 0 else "",
                    "2026-12-15",
                    "Regular",
                ]
            )
    return len(phones), bool(demo_rows)


def set_upstream_delay(upstream: Server, seconds: float) -> None:
    request = urllib.request.Request(
        f"http://{HOST}:{upstream.port}/delay",
        data=json.dumps({"delay_s": seconds}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5):
        pass


def upstream_completions(upstream: Server | None) -> int:
    if upstream is None:
        return 0
    with urllib.request.urlopen(f"http://{HOST}:{upstream.port}/stats", timeout=5) as response:
        return int(json.load(response)["completions"])


def run_loadgen(spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--loadgen", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout))


# --------------------------------------------------------------------------- measuring


@dataclass
class Row:
    server: str
    db: str
    clients: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: float
    busy_pct: float
    llm_calls: float | None
    upstream_cpu_ms: float | None
    loadgen_cpu_ms: float
    other_cores: float
    extra: bool
    error_samples: list[str]


@dataclass
class SlowResult:
    label: str
    conversations: int
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    peak_in_flight: int
    cpu_ms: float
    error_samples: list[str]


@dataclass
class Report:
    quick: bool
    rows: list[Row] = field(default_factory=list)
    slow: list[SlowResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)


def measure(
    server: Server,
    upstream: Server | None,
    label: str,
    db: str,
    args: argparse.Namespace,
    quiet: QuietWait,
    *,
    extra: bool = False,
) -> list[Row]:
    rows = []
    watch = {"server": server.pid, **({"upstream": upstream.pid} if upstream else {})}
    for run, clients in enumerate(LEVELS, start=1):
        quiet()
        calls_before = upstream_completions(upstream)
        spec = {
            "mode": "clients",
            "port": server.port,
            "path": "/chat",
            "clients": clients,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "run": run,
            "watch": watch,
        }
        result = run_loadgen(spec, timeout_s=args.warmup + args.duration + 90)
        calls = upstream_completions(upstream) - calls_before
        done, window = max(1, result["completed"]), result["window_s"]
        others = result["cpu_s"]["server"] + result["cpu_s"].get("upstream", 0.0) + result["loadgen_cpu_s"]
        row = Row(
            server=label,
            db=db,
            clients=clients,
            rps=result["ok"] / window,
            p50_ms=result["p50_ms"],
            p99_ms=result["p99_ms"],
            errors=result["errors_total"],
            cpu_ms=1000 * result["cpu_s"]["server"] / done,
            busy_pct=100 * result["cpu_s"]["server"] / window,
            llm_calls=calls / max(1, result["requests_total"]) if upstream else None,
            upstream_cpu_ms=1000 * result["cpu_s"]["upstream"] / done if upstream else None,
            loadgen_cpu_ms=1000 * result["loadgen_cpu_s"] / done,
            other_cores=max(0.0, result["machine_busy_s"] - others) / window,
            extra=extra,
            error_samples=result["error_samples"],
        )
        rows.append(row)
        print(f"  {format_row_plain(row)}", file=sys.stderr, flush=True)
    return rows


def measure_slow(server: Server, upstream: Server, args: argparse.Namespace, quiet: QuietWait) -> list[SlowResult]:
    results = []
    scenarios = [("ramp", SLOW_RUN, SLOW_DELAY_S), ("burst", BURST_RUN, 0.0)][: 1 if args.quick else 2]
    for label, run, ramp in scenarios:
        quiet()
        spec = {
            "mode": "conversations",
            "port": server.port,
            "path": "/chat",
            "conversations": args.slow_conversations,
            "questions": SLOW_QUESTIONS,
            "ramp_s": ramp,
            "run": run,
            "timeout_s": 120,
            "watch": {"server": server.pid, "upstream": upstream.pid},
        }
        result = run_loadgen(spec, timeout_s=180)
        slow = SlowResult(
            label=label,
            conversations=args.slow_conversations,
            requests=result["requests_total"],
            errors=result["errors_total"],
            p50_ms=result["p50_ms"],
            p99_ms=result["p99_ms"],
            max_ms=result["max_ms"],
            peak_in_flight=result["peak_in_flight"],
            cpu_ms=1000 * result["cpu_s"]["server"] / max(1, result["requests_total"]),
            error_samples=result["error_samples"],
        )
        results.append(slow)
        print(
            f"  slow-model {label}: {slow.requests} requests, {slow.errors} errors, p50 {slow.p50_ms:.0f} ms, "
            f"p99 {slow.p99_ms:.0f} ms, max {slow.max_ms:.0f} ms, peak in flight {slow.peak_in_flight}",
            file=sys.stderr,
            flush=True,
        )
    return results


def keep_error_logs(report: Report, server: Server, failed: bool) -> None:
    if failed:
        lines = server.log.read_text(errors="replace").splitlines()
        interesting = [line for line in lines if "error" in line.lower() or "Traceback" in line or "  File" in line]
        report.logs[server.name] = "\n".join((interesting or lines)[-60:])


def prepare_postgres() -> str | None:
    """A scratch database of our own (the tests' database stays untouched); None when unavailable."""
    try:
        import asyncpg  # only needed for the PostgreSQL rows
    except ImportError:
        return None

    async def recreate() -> None:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database="postgres", timeout=5)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {PG_DATABASE}")
        finally:
            await conn.close()

    try:
        asyncio.run(recreate())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        print(f"PostgreSQL rows skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    return f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{PG_DATABASE}"


def drop_postgres() -> None:
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database="postgres", timeout=5)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        finally:
            await conn.close()

    with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
        asyncio.run(drop())


def run_benchmark(args: argparse.Namespace, workdir: Path, report: Report) -> None:
    fleet, quiet = Fleet(workdir), QuietWait(budget_s=0.0 if args.quick else 30.0)
    roster = workdir / "bench_students.csv"
    known, demo_in_roster = write_roster(roster, args.slow_conversations)
    report.notes.append(
        f"Bedel's database holds demo/students.csv plus {known} synthetic students: half the conversations "
        "are known students whose record goes into the prompt."
    )

    def wanted(name: str) -> bool:
        return not args.only or name in args.only

    def attempt(what: str, step: Callable[[], None]) -> None:
        """One server's measurements; a failure is reported and the others still run."""
        print(f"{what}:", file=sys.stderr, flush=True)
        try:
            step()
        except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
            report.failures.append(f"{what}: {exc}")
            print(f"  FAILED: {exc}", file=sys.stderr, flush=True)
        finally:
            for server in list(fleet.servers):
                if server is not fast:
                    fleet.stop(server)

    def reference(label: str, app: str) -> None:
        env = clean_env(FAKE_LLM_BASE_URL=f"http://{HOST}:{fast.port}/v1")
        server = fleet.start(label, uvicorn_cmd(app, (port := free_port())), env, port)
        rows = measure(server, fast if label == "naive-llm" else None, label, "-", args, quiet)
        report.rows += rows
        keep_error_logs(report, server, any(r.errors for r in rows))

    def bedel(label: str, db: str, url: str | None, upstream: Server | None, rows: bool, slow: bool) -> None:
        server = start_bedel(fleet, f"{label}-{db}", url, upstream, workdir, roster, demo_in_roster)
        if rows:
            measured = measure(server, upstream, label, db, args, quiet, extra=db != "sqlite")
            report.rows += measured
            keep_error_logs(report, server, any(r.errors for r in measured))
        if slow and upstream is not None:
            # The same server, now waiting on a slow model: a server that has just been busy, as in production.
            print(f"slow model ({SLOW_DELAY_S} s, {args.slow_conversations} conversations):", file=sys.stderr)
            set_upstream_delay(upstream, SLOW_DELAY_S)
            try:
                report.slow = measure_slow(server, upstream, args, quiet)
            finally:
                set_upstream_delay(upstream, 0.0)
            keep_error_logs(report, server, any(s.errors for s in report.slow))

    postgres_url = None
    try:
        fast = fleet.start("fake-llm", uvicorn_cmd("fake_llm:app", (port := free_port())), clean_env(), port)
        for label, app in (("bare", "bare_app:bare"), ("naive-llm", "bare_app:naive_llm")):
            if wanted(label):
                attempt(label, partial(reference, label, app))
        if wanted("bedel-offline"):
            attempt("bedel-offline (sqlite)", partial(bedel, "bedel-offline", "sqlite", None, None, True, False))
        if wanted("bedel-fake-llm") or wanted("slow"):
            rows, slow = wanted("bedel-fake-llm"), wanted("slow")
            attempt("bedel-fake-llm (sqlite)", partial(bedel, "bedel-fake-llm", "sqlite", None, fast, rows, slow))
        if args.postgres and wanted("postgres") and (postgres_url := prepare_postgres()):
            for label, upstream in (("bedel-offline", None), ("bedel-fake-llm", fast)):
                if wanted(label):
                    attempt(
                        f"{label} (postgres)", partial(bedel, label, "postgres", postgres_url, upstream, True, False)
                    )
    finally:
        fleet.stop_all()
        if postgres_url:
            drop_postgres()
        if quiet.budget_s > 0:
            report.notes.append(
                f"Before each measured run the benchmark waited (at most {quiet.per_run_s:g} s, "
                f"{quiet.budget_s:g} s in all) for other processes to use under {quiet.threshold} of a core; "
                f"it waited {quiet.waited_s:.0f} s."
            )


def start_bedel(
    fleet: Fleet,
    name: str,
    postgres_url: str | None,
    upstream: Server | None,
    workdir: Path,
    roster: Path,
    demo_in_roster: bool,
) -> Server:
    """`bedel db upgrade`, the students and the demo documents loaded, then `bedel serve` on a fresh database."""
    url = postgres_url or f"sqlite+aiosqlite:///{workdir / name}.db"
    env = bedel_env(url, upstream)
    if postgres_url and prepare_postgres() is None:  # each variant starts from an empty database
        raise RuntimeError("could not recreate the PostgreSQL scratch database")
    bedel_cli(["db", "upgrade"], env, workdir)
    if DEMO_STUDENTS.exists() and not demo_in_roster:
        bedel_cli(["students", "import", str(DEMO_STUDENTS)], env, workdir)
    bedel_cli(["students", "import", str(roster)], env, workdir)
    bedel_cli(["kb", "add", str(DEMO_KNOWLEDGE)], env, workdir)
    port = free_port()
    return fleet.start(name, [str(BIN_DIR / "bedel"), "serve", "--port", str(port)], env, port)


# --------------------------------------------------------------------------- reporting


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def format_row_plain(row: Row) -> str:
    return (
        f"{row.server:<15} {row.db:<8} {row.clients:>3} clients: {row.rps:8.1f} req/s  p50 {row.p50_ms:7.1f} ms  "
        f"p99 {row.p99_ms:7.1f} ms  errors {row.errors}  CPU {row.cpu_ms:6.2f} ms/req ({row.busy_pct:.0f}% busy)"
    )


def find(rows: list[Row], server: str, db: str, clients: int) -> Row | None:
    return next((r for r in rows if r.server == server and r.db == db and r.clients == clients), None)


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**MISS**"


def goal_lines(rows: list[Row]) -> list[str]:
    lines = []
    bare = find(rows, "bare", "-", GOAL_CLIENTS)
    for db in ("sqlite", "postgres"):
        tag = "" if db == "sqlite" else " (extra, not the goal's database)"
        for label in ("bedel-offline", "bedel-fake-llm"):
            row = find(rows, label, db, GOAL_CLIENTS)
            if row is None or bare is None:
                continue
            ratio = row.rps / bare.rps if bare.rps else math.nan
            gap = (ratio - GOAL_RATIO) * 100
            lines.append(
                f"- Throughput, {label} on {db}{tag}, {GOAL_CLIENTS} clients: {row.rps:,.1f} req/s = "
                f"{ratio:.1%} of bare ({bare.rps:,.1f} req/s); goal ≥ {GOAL_RATIO:.0%}: {verdict(ratio >= GOAL_RATIO)} "
                f"({gap:+.1f} points; needs {bare.rps * GOAL_RATIO:,.0f} req/s)"
            )
            lines.append(
                f"- p99 latency, {label} on {db}{tag}, {GOAL_CLIENTS} clients: {row.p99_ms:.1f} ms; "
                f"goal < {GOAL_P99_MS:.0f} ms: {verdict(row.p99_ms < GOAL_P99_MS)} "
                f"({row.p99_ms - GOAL_P99_MS:+.1f} ms)"
            )
    return lines


def cpu_lines(rows: list[Row]) -> list[str]:
    lines = []
    for db in ("sqlite", "postgres"):
        for clients in LEVELS:
            naive, bedel = find(rows, "naive-llm", "-", clients), find(rows, "bedel-fake-llm", db, clients)
            if naive is None or bedel is None:
                continue
            overhead = bedel.cpu_ms - naive.cpu_ms
            headline = clients == GOAL_CLIENTS and db == "sqlite"
            lines.append(
                f"- {'**' if headline else ''}CPU beyond the LLM call, {db}, {clients} clients"
                f"{'**' if headline else ''}: bedel-fake-llm {bedel.cpu_ms:.2f} − naive-llm {naive.cpu_ms:.2f} = "
                f"{overhead:.2f} ms/request; budget ≈ {CPU_BUDGET_MS:.0f} ms: {verdict(overhead <= CPU_BUDGET_MS)}"
                f" ({overhead - CPU_BUDGET_MS:+.2f} ms)"
            )
    naive16 = find(rows, "naive-llm", "-", GOAL_CLIENTS)
    if naive16 is not None:
        lines.append(
            f"- Reference: naive-llm costs {naive16.cpu_ms:.2f} ms of CPU per request at {GOAL_CLIENTS} clients "
            "(DESIGN.md: about 2 ms on these machines)."
        )
    return lines


def slow_lines(slow: list[SlowResult]) -> list[str]:
    lines = []
    floor = SLOW_DELAY_S * 1000
    for result in slow:
        how = (
            f"started evenly over {SLOW_DELAY_S} s on the bedel-fake-llm (sqlite) server just measured"
            if result.label == "ramp"
            else "all started at the same instant (informative: a burst queues on one core)"
        )
        extra50, extra99 = result.p50_ms - floor, result.p99_ms - floor
        line = (
            f"- Slow model, {result.label}: {result.conversations} conversations {how}, "
            f"{SLOW_QUESTIONS} questions each, "
            f"{result.requests} requests, peak {result.peak_in_flight} in flight: {result.errors} errors; "
            f"p50 {result.p50_ms:,.0f} ms (extra {extra50:+,.0f} ms over the {floor:.0f} ms floor), "
            f"p99 {result.p99_ms:,.0f} ms (extra {extra99:+,.0f} ms), max {result.max_ms:,.0f} ms; "
            f"CPU {result.cpu_ms:.2f} ms/request"
        )
        if result.label == "ramp":
            ok = result.errors == 0 and extra99 <= SLOW_EXTRA_BUDGET_MS
            line += (
                f". Goal: no errors and no noticeable extra latency (read as p99 extra ≤ "
                f"{SLOW_EXTRA_BUDGET_MS:.0f} ms): {verdict(ok)}"
            )
        lines.append(line)
        if result.label == "ramp" and result.cpu_ms:
            capacity = 1000 / result.cpu_ms
            lines.append(
                f"  - Why: {result.conversations} conversations each waiting {SLOW_DELAY_S} s need "
                f"{result.conversations / SLOW_DELAY_S:.0f} req/s (Little's law); at {result.cpu_ms:.1f} ms of CPU "
                f"per request one worker serves at most {capacity:.0f} req/s, so about "
                f"{capacity * SLOW_DELAY_S:.0f} conversations can wait at once before requests queue for the CPU."
            )
    return lines


def capacity_lines(rows: list[Row]) -> list[str]:
    """The throughput ratio again from CPU per request alone, which other processes' load hardly moves."""
    bare = find(rows, "bare", "-", GOAL_CLIENTS)
    lines = []
    for label in ("bedel-offline", "bedel-fake-llm"):
        row = find(rows, label, "sqlite", GOAL_CLIENTS)
        if row is None or bare is None or not row.cpu_ms:
            continue
        lines.append(
            f"- CPU-bound view (informative), {label}, {GOAL_CLIENTS} clients: one core serves at most "
            f"{1000 / row.cpu_ms:,.0f} req/s of it against {1000 / bare.cpu_ms:,.0f} of bare "
            f"({bare.cpu_ms / row.cpu_ms:.1%}); throughput ratios above move with the machine's other load, "
            "this one much less."
        )
    return lines


def table(rows: list[Row]) -> list[str]:
    lines = [
        "| server | db | clients | req/s | p50 ms | p99 ms | errors | CPU ms/request | server CPU busy "
        "| LLM calls/request |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        name = f"{row.server} (extra)" if row.extra else row.server
        lines.append(
            f"| {name} | {row.db} | {row.clients} | {fmt(row.rps)} | {fmt(row.p50_ms)} | {fmt(row.p99_ms)} | "
            f"{row.errors} | {fmt(row.cpu_ms, 2)} | {row.busy_pct:.0f}% | {fmt(row.llm_calls, 2)} |"
        )
    return lines


def side_table(rows: list[Row]) -> list[str]:
    lines = [
        "| server | db | clients | load generator CPU ms/request | fake upstream CPU ms/request "
        "| other processes (cores) |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.server} | {row.db} | {row.clients} | {fmt(row.loadgen_cpu_ms, 3)} | "
            f"{fmt(row.upstream_cpu_ms, 2)} | {row.other_cores:.2f} |"
        )
    return lines


def code_revision() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--", "src", "migrations")
    return f"commit {commit}" + (f" with uncommitted changes in {len(changed.splitlines())} file(s)" if changed else "")


def revision_line(at_start: str) -> str:
    at_end = code_revision()
    if at_end == at_start:
        return f"Code: {at_end}."
    return f"Code: {at_start} when the run started, {at_end} when it ended (src/ changed during the run)."


def machine_line() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("uvicorn", "uvloop", "httptools", "fastapi", "openai", "httpx", "sqlalchemy", "aiosqlite")
    )
    return (
        f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; {versions}"
    )


def render(
    report: Report, args: argparse.Namespace, started: dt.datetime, load: tuple[float, ...], revision: str
) -> str:
    mode = "--quick" if report.quick else "full run"
    out = [
        "# /chat overhead",
        "",
        f"Generated by `bench/chat_overhead.py` ({mode}) on {started:%Y-%m-%d %H:%M} UTC; "
        "re-run with `.venv/bin/python bench/chat_overhead.py` (`make bench`).",
        "",
        f"Machine: {machine_line()}. Load average at start: {' '.join(f'{x:.2f}' for x in load)}.",
        "",
        revision_line(revision),
        "",
        "## Method",
        "",
        "- Each server is its own uvicorn process on 127.0.0.1, one worker, no access log (the bare apps with "
        "`--no-access-log --log-level warning`, Bedel through `bedel serve`, which sets the same), uvloop and "
        "httptools in both; a fresh process (and for Bedel a fresh database) per server.",
        "- `bare`: FastAPI `POST /chat` validating the body with Pydantic and echoing it. `naive-llm`: FastAPI "
        "`POST /chat` calling the `openai` SDK (`AsyncOpenAI` on an `httpx.AsyncClient`) with a one-line system "
        "prompt. `bedel-offline`: Bedel with the offline engine. `bedel-fake-llm`: Bedel with "
        "`BEDEL_LLM_PROVIDER=openai_compatible` against `bench/fake_llm.py`, a fake upstream answering at once "
        "with an OpenAI-shaped `chat.completion` (naive-llm uses the same upstream). Rate limits set to "
        f"{GENEROUS_LIMIT}, no API keys.",
        f"- Load: N clients (keep-alive connections), each asking the {len(QUESTIONS)} questions of "
        "`QUESTIONS` in order on one phone, then moving to a new phone of its own; "
        f"{args.warmup:g} s warm-up, then a {args.duration:g} s measured window. req/s counts 200s completed "
        "in the window; p50/p99 cover every request completed in it; errors count every non-200 (or connection "
        "failure) of the whole run, warm-up included.",
        "- CPU ms/request: utime + stime of the server process (all threads, plus any child) from /proc over "
        "the window, divided by the requests completed in it. `server CPU busy` is that CPU over wall time: "
        "~100% means the single worker was saturated (more than 100% is its helper threads, e.g. aiosqlite).",
        "- The load generator is a separate process (a raw HTTP/1.1 client on uvloop, "
        "`chat_overhead.py --loadgen`), so the process under test keeps a core to itself on this 2-core "
        "machine; its own CPU per request and any foreign CPU use are in the last table.",
        *(f"- {note}" for note in report.notes),
        "",
        "## Results",
        "",
        *table(report.rows),
        "",
        "## Goals",
        "",
    ]
    bare = find(report.rows, "bare", "-", GOAL_CLIENTS)
    for label in ("bedel-offline", "bedel-fake-llm"):
        row = find(report.rows, label, "sqlite", GOAL_CLIENTS)
        if row is not None and bare is not None and bare.rps:
            out.append(f"- Ratio {label}/bare req/s at {GOAL_CLIENTS} clients (SQLite): {row.rps / bare.rps:.3f}")
    out += goal_lines(report.rows)
    out += cpu_lines(report.rows)
    out += slow_lines(report.slow)
    out += capacity_lines(report.rows)
    out += ["", "## Load generator, fake upstream and the rest of the machine", "", *side_table(report.rows)]
    out += [
        "",
        "On PostgreSQL rows, `other processes` includes the PostgreSQL server working for Bedel: its CPU is "
        "not in Bedel's CPU ms/request, while SQLite's is (SQLite runs inside the Bedel process).",
    ]
    busy = [r for r in report.rows if r.other_cores > 0.15 and r.db != "postgres"]
    if busy:
        out += [
            "",
            f"Warning: other processes used more than 0.15 of a core during {len(busy)} measured window(s) "
            "(the machine is shared); those rows may read low.",
        ]
    failures = [r for r in report.rows if r.errors] + [s for s in report.slow if s.errors]
    if failures or report.logs or report.failures:
        out += ["", "## Errors", ""]
        out += [f"- Not measured: {failure}" for failure in report.failures]
        for failure in failures:
            name = failure.server if isinstance(failure, Row) else f"slow model {failure.label}"
            out += [f"- {name}: {failure.errors} errors; first ones:", ""]
            out += [f"      {sample}" for sample in failure.error_samples]
            out.append("")
        for name, text in report.logs.items():
            out += [f"Server log ({name}), error lines:", "", "```text", text, "```", ""]
    return "\n".join(out).rstrip() + "\n"


def print_summary(report: Report) -> None:
    print()
    for row in report.rows:
        print(format_row_plain(row))
    lines = goal_lines(report.rows) + cpu_lines(report.rows) + slow_lines(report.slow) + capacity_lines(report.rows)
    for line in lines:
        print(line.replace("**", ""))
    for failure in report.failures:
        print(f"NOT MEASURED: {failure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 s windows, 100 slow conversations, no PostgreSQL")
    parser.add_argument("--postgres", action=argparse.BooleanOptionalAction, default=None, help="PostgreSQL rows")
    parser.add_argument(
        "--only",
        type=lambda s: set(s.split(",")),
        default=None,
        help="comma-separated subset of: bare,naive-llm,bedel-offline,bedel-fake-llm,slow,postgres",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="where to write the markdown")
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        loadgen_main(args.loadgen)
        return
    args.warmup, args.duration = (1.0, 3.0) if args.quick else (2.0, 10.0)
    args.slow_conversations = 100 if args.quick else 200
    if args.postgres is None:
        args.postgres = not args.quick

    # A SIGTERM unwinds like Ctrl-C, so the `finally` blocks stop every server this run started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started, load, revision = dt.datetime.now(dt.UTC), os.getloadavg(), code_revision()
    report = Report(quick=args.quick)
    workdir = Path(tempfile.mkdtemp(prefix="bedel-bench-"))
    failed = True
    try:
        run_benchmark(args, workdir, report)
        failed = False
    finally:
        if failed or report.logs or report.failures:
            print(f"server logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    # Other benchmarks' sections (from "# Knowledge base" on) are kept as they are.
    previous = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
    kept = previous[previous.index(OTHER_RESULTS) :] if OTHER_RESULTS in previous else ""
    args.output.write_text(
        render(report, args, started, load, revision) + ("\n" + kept if kept else ""), encoding="utf-8"
    )
    print_summary(report)
    print(f"\nwrote {args.output}")
    if report.failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
