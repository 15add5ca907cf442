"""The processes a run starts (reference apps, `bedel serve`, the fake upstream) and the databases they use."""

import asyncio
import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from overhead_workload import BURST_RUN, HOST, KNOWN_CONVERSATIONS, LEVELS, SLOW_RUN, phone_for

ROOT = Path(__file__).resolve().parent.parent
# Run as `python bench/x.py`: the repository goes on the path for the tests' shared helpers.
sys.path.insert(0, str(ROOT))
from tests.ports import free_port as free_port  # noqa: E402  (chat_overhead.py takes it from here)

BENCH_DIR = ROOT / "bench"
DEMO_STUDENTS = ROOT / "demo" / "students.csv"
DEMO_KNOWLEDGE = ROOT / "demo" / "knowledge"
BIN_DIR = Path(sys.executable).parent
GENEROUS_LIMIT = "1000000/minute"

PG_HOST, PG_PORT = "127.0.0.1", 5432
# Another database name (BEDEL_BENCH_DATABASE) lets two runs share one PostgreSQL server.
PG_DATABASE = os.environ.get("BEDEL_BENCH_DATABASE", "bedel_bench")
STUDENT_COLUMNS = ["matricula", "nombre", "telefono", "correo", "carrera", "semestre", "promedio", "adeudo"]
STUDENT_COLUMNS += ["meses_vencidos", "tutor", "beca", "fecha_limite_pago", "estatus"]


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
    # The API key the load generator sends (a client key kept in Bedel's database, as in production).
    api_key: str | None = None

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
        # Its own metrics port: another `bedel serve` on this shared machine may hold the default one.
        BEDEL_METRICS_PORT=str(free_port()),
    )
    if upstream is not None:
        env.update(
            BEDEL_LLM_PROVIDER="openai_compatible",
            BEDEL_LLM_BASE_URL=f"http://{HOST}:{upstream.port}/v1",
            BEDEL_LLM_API_KEY="sk-bench",
        )
    return env


def bedel_cli(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [str(BIN_DIR / "bedel"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"bedel {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


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


def start_bedel(
    fleet: Fleet,
    name: str,
    postgres_url: str | None,
    upstream: Server | None,
    workdir: Path,
    roster: Path,
    demo_in_roster: bool,
) -> Server:
    """`bedel db upgrade`, the students and the demo documents loaded and a client API key made, then
    `bedel serve` on a fresh database."""
    url = postgres_url or f"sqlite+aiosqlite:///{workdir / name}.db"
    env = bedel_env(url, upstream)
    if postgres_url and prepare_postgres() is None:  # each variant starts from an empty database
        raise RuntimeError("could not recreate the PostgreSQL scratch database")
    bedel_cli(["db", "upgrade"], env, workdir)
    if DEMO_STUDENTS.exists() and not demo_in_roster:
        bedel_cli(["students", "import", str(DEMO_STUDENTS)], env, workdir)
    bedel_cli(["students", "import", str(roster)], env, workdir)
    bedel_cli(["kb", "add", str(DEMO_KNOWLEDGE)], env, workdir)
    # Every request is checked against the database's keys, as a deployment's are.
    api_key = bedel_cli(["keys", "create", "--role", "client", "--name", "bench"], env, workdir).split()[-1]
    port = free_port()
    server = fleet.start(name, [str(BIN_DIR / "bedel"), "serve", "--port", str(port)], env, port)
    server.api_key = api_key
    return server
