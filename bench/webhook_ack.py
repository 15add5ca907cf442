"""How fast `POST /webhooks/whatsapp` acknowledges Meta under load, and how soon the replies follow.

Run: `.venv/bin/python bench/webhook_ack.py [--requests N] [--concurrency C] [--workers 1 2]
[--databases sqlite postgresql]` (writes bench/WEBHOOK_RESULTS.md; PostgreSQL at BEDEL_BENCH_POSTGRES_URL,
which it empties; needs Redis on 127.0.0.1:6379 for more than one worker).

`bedel serve --workers W` runs as its own process(es) (offline engine; jobs in process, or beside
one `bedel worker`; with W > 1 the rate limits are shared through Redis db 14) with the WhatsApp
channel pointed at bench/fake_graph.py. The load generator
posts signed Cloud API text-message notifications, each with a new wamid from one of 200
phones: first sustained (C clients, each posting again as soon as it is acknowledged), then
20 bursts of C simultaneous deliveries 200 ms apart; it records each acknowledgement's
latency, then waits until the jobs table holds no unfinished channel job, and checks that every
message was answered and that the fake Graph API received, for each phone, exactly the reply parts
queued for it (exactly once, nothing lost; an answer too long to carry its reply buttons is two parts).
The goal (issue 15, item 3): p99 under 50 ms at 50 concurrent deliveries.
"""

import argparse
import asyncio
import collections
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from bedel.db import create_engine
from bedel.jobs.models import Job, JobStatus

ROOT = Path(__file__).resolve().parent.parent
# Run as `python bench/x.py`: the repository goes on the path for the tests' shared helpers.
sys.path.insert(0, str(ROOT))
from tests.backends import empty_postgres  # noqa: E402
from tests.ports import free_port  # noqa: E402

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
SECRET = "bench-app-secret"
PHONE_NUMBER_ID = "106540352242922"
REDIS_URL = "redis://127.0.0.1:6379/14"
POSTGRES_URL = os.environ.get("BEDEL_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/bedel_wa")


def wait_http(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


WARM_UP = 50
WARM_UP_FIRST = 1_000_000


def phone(n: int) -> str:
    """200 phones for the measured deliveries, others for the warm-up."""
    return f"52155{n % 200:08d}" if n < WARM_UP_FIRST else f"52166{n % 200:08d}"


def notification(n: int) -> bytes:
    return text_notification(phone(n), f"wamid.bench.{n}.{time.time_ns()}", "¿Cuándo es la fecha límite de pago?")


def text_notification(wa_id: str, message_id: str, text: str) -> bytes:
    """A Cloud API notification of one text message from `wa_id`, as Meta documents it."""
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
                            "contacts": [{"profile": {"name": "Bench"}, "wa_id": wa_id}],
                            "messages": [
                                {
                                    "from": wa_id,
                                    "id": message_id,
                                    "timestamp": str(int(time.time())),
                                    "text": {"body": text},
                                    "type": "text",
                                }
                            ],
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }
    return json.dumps(payload).encode()


def signed_headers(body: bytes) -> dict[str, str]:
    """The headers Meta sends with a notification: its HMAC-SHA256 under the app secret."""
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "x-hub-signature-256": signature}


async def load(base: str, requests: int, concurrency: int, first: int = 0) -> tuple[list[float], int]:
    bodies = [notification(first + n) for n in range(requests)]
    latencies: list[float] = []
    errors = 0
    queue = iter(bodies)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def worker() -> None:
            nonlocal errors
            for body in queue:
                started = time.perf_counter()
                response = await client.post("/webhooks/whatsapp", content=body, headers=signed_headers(body))
                latencies.append((time.perf_counter() - started) * 1000)
                errors += response.status_code != 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


async def bursts(base: str, count: int, size: int, first: int) -> list[float]:
    """`count` bursts of `size` simultaneous deliveries, 200 ms apart: Meta's redelivery storm after an outage."""
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=httpx.Limits(max_connections=size)) as client:

        async def deliver(body: bytes) -> None:
            started = time.perf_counter()
            response = await client.post("/webhooks/whatsapp", content=body, headers=signed_headers(body))
            response.raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)

        for burst in range(count):
            bodies = [notification(first + burst * size + n) for n in range(size)]
            await asyncio.gather(*(deliver(body) for body in bodies))
            await asyncio.sleep(0.2)
    return latencies


def log_events(text: str) -> list[dict[str, Any]]:
    """Every JSON object in the log; several processes writing to one file may run two lines together."""
    decoder = json.JSONDecoder()
    events = []
    position = text.find("{")
    while position != -1:
        try:
            event, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            end = position + 1
        else:
            events.append(event)
        position = text.find("{", end)
    return events


async def ledger(database: str) -> tuple[int, collections.Counter[str], int]:
    """From the jobs table: channel jobs not finished, reply parts queued per recipient, messages answered."""
    engine = create_engine(database)
    async with engine.connect() as connection:
        rows = (
            await connection.execute(select(Job.kind, Job.status, Job.payload).where(Job.kind.like("channels.%")))
        ).all()
    await engine.dispose()
    unfinished = sum(status in (JobStatus.queued, JobStatus.running) for _, status, _ in rows)
    # Replies go to the canonical number: a Mexican mobile without WhatsApp's "1" after 52.
    intended = collections.Counter(
        payload["phone"].lstrip("+") for kind, _, payload in rows if kind == "channels.deliver"
    )
    answered = sum(kind == "channels.answer" and status == JobStatus.done for kind, status, _ in rows)
    return unfinished, intended, answered


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(database: str, requests: int, concurrency: int, *, separate_worker: bool, workers: int) -> dict[str, object]:
    graph_port, bedel_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BEDEL_", "OPENAI_"))}
    env |= {
        "BEDEL_DATABASE_URL": database,
        "BEDEL_WHATSAPP_VERIFY_TOKEN": "bench",
        "BEDEL_WHATSAPP_APP_SECRET": SECRET,
        "BEDEL_WHATSAPP_ACCESS_TOKEN": "bench",
        "BEDEL_WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "BEDEL_WHATSAPP_API_BASE": f"http://{HOST}:{graph_port}/v23.0",
        "BEDEL_RATE_LIMIT_PER_PHONE": "100000/minute",
        "BEDEL_JOBS_IN_PROCESS": "false" if separate_worker else "true",
        # One reply per message, as the run counts them, not one per burst of a phone.
        "BEDEL_WHATSAPP_BURST_WINDOW_S": "0",
        "BEDEL_WORKERS": str(workers),
    }
    if workers > 1:
        env["BEDEL_RATE_LIMIT_STORAGE_URL"] = REDIS_URL
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    graph = subprocess.Popen(
        [
            str(BIN / "uvicorn"),
            "fake_graph:app",
            "--app-dir",
            str(ROOT / "bench"),
            "--port",
            str(graph_port),
            "--no-access-log",
        ],
        env=env,
        **quiet,
    )
    if database.startswith("postgresql"):
        empty_postgres(database)  # the replies are checked against the jobs table: it holds this run's only
    subprocess.run([str(BIN / "bedel"), "db", "upgrade"], env=env, check=True, **quiet)
    log_file = tempfile.NamedTemporaryFile(prefix="bedel-serve-", suffix=".log", delete=False)  # noqa: SIM115
    bedel = subprocess.Popen(
        [str(BIN / "bedel"), "serve", "--port", str(bedel_port)], env=env, stdout=subprocess.DEVNULL, stderr=log_file
    )
    processes = [bedel, graph]
    if separate_worker:
        # A worker listens like `bedel serve` (/healthz, /metrics): it needs ports of its own.
        ports = {"BEDEL_PORT": str(free_port()), "BEDEL_METRICS_PORT": str(free_port())}
        worker_env = env | ports | {"BEDEL_WORKERS": "1"}
        processes.append(subprocess.Popen([str(BIN / "bedel"), "worker"], env=worker_env, **quiet))
    try:
        wait_http(f"http://{HOST}:{graph_port}/stats")
        wait_http(f"http://{HOST}:{bedel_port}/readyz")
        # Warm-up, on phones of its own so the exact count below holds.
        asyncio.run(load(f"http://{HOST}:{bedel_port}", WARM_UP, 10, first=WARM_UP_FIRST))
        sent_before = 0
        while sent_before < WARM_UP:  # its replies counted before the measured ones start
            time.sleep(0.2)
            sent_before = json.load(urllib.request.urlopen(f"http://{HOST}:{graph_port}/stats"))["messages"]
        loadavg = Path("/proc/loadavg").read_text().split()[:3]
        started = time.perf_counter()
        latencies, errors = asyncio.run(load(f"http://{HOST}:{bedel_port}", requests, concurrency))
        acked_s = time.perf_counter() - started
        burst = asyncio.run(bursts(f"http://{HOST}:{bedel_port}", 20, concurrency, requests))
        requests += 20 * concurrency
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            unfinished, _, answered = asyncio.run(ledger(database))
            if not unfinished and answered >= requests + WARM_UP:
                break
            time.sleep(0.5)
        replied_s = time.perf_counter() - started
        # A reply sent twice would arrive after the queue emptied: give it the time to.
        time.sleep(3)
        stats = json.load(urllib.request.urlopen(f"http://{HOST}:{graph_port}/stats"))
        sent = stats["messages"] - sent_before
        _, intended, answered = asyncio.run(ledger(database))
        # Every message answered, and each part queued for a phone sent exactly once (an answer may be two
        # parts: its buttons' question goes alone after a text too long to carry them).
        measured = {"52" + phone(n)[3:] for n in range(200)}
        exactly_once = answered == requests + WARM_UP and all(stats["to"].get(to, 0) == intended[to] for to in measured)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=60)
    # The server's own view: the access log's duration of each webhook, without the client's share.
    served = [
        event["duration_ms"]
        for event in log_events(Path(log_file.name).read_text(encoding="utf-8"))
        if event.get("event") == "request" and event.get("path") == "/webhooks/whatsapp"
    ]
    if exactly_once:
        Path(log_file.name).unlink()
    else:
        wrong = {
            to: (stats["to"].get(to, 0), intended[to]) for to in measured if stats["to"].get(to, 0) != intended[to]
        }
        print(f"not exactly once (sent, queued): {wrong}; server log kept at {log_file.name}", flush=True)
    return {
        "server_p50": statistics.median(served),
        "server_p99": percentile(served, 0.99),
        "burst_p50": statistics.median(burst),
        "burst_p99": percentile(burst, 0.99),
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies),
        "errors": errors,
        "exactly_once": exactly_once,
        "loadavg": " ".join(loadavg),
        "acked_per_s": requests / acked_s,
        "replies": sent,
        "all_replied_s": replied_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--workers", type=int, nargs="+", default=[2], help="server processes to run, in turn")
    parser.add_argument("--in-process-only", action="store_true", help="skip the set-up beside a `bedel worker`")
    parser.add_argument("--databases", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        urls = {
            "sqlite": ("SQLite", f"sqlite+aiosqlite:///{folder}/bench.db"),
            "postgresql": ("PostgreSQL", POSTGRES_URL),
        }
        databases = [urls[name] for name in args.databases]
        set_ups = [False] if args.in_process_only else [False, True]
        for name, url in databases:
            for workers in args.workers:
                for separate_worker in set_ups:
                    result = run(url, args.requests, args.concurrency, separate_worker=separate_worker, workers=workers)
                    where = "`bedel worker` process" if separate_worker else "jobs in process"
                    label = f"{name}, {workers} server process{'es' if workers > 1 else ''}, {where}"
                    print(label, result, flush=True)
                    rows.append((label, result))
    lines = [
        "# Webhook acknowledgement under load",
        "",
        f"`bench/webhook_ack.py`: {args.requests} signed WhatsApp text notifications (200 phones), "
        f"{args.concurrency} concurrent deliveries (each client posts its next one as soon as the last is "
        "acknowledged), then 20 bursts of as many at once, against `bedel serve --workers W` (offline engine) "
        "answering in process or beside one `bedel worker`, and bench/fake_graph.py; run on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs. Goal: p99 under 50 ms.",
        "",
        "| set-up | bursts: ack p50 ms | bursts: ack p99 ms | sustained: ack p50 ms | sustained: ack p99 ms "
        "| sustained: max ms | server-side p50 / p99 ms | errors | acks/s | replies sent | each reply once "
        "| all replied after s | load average at start |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['burst_p50']:.1f} | {r['burst_p99']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} "
            f"| {r['max']:.1f} | {r['server_p50']:.1f} / {r['server_p99']:.1f} | {r['errors']} "
            f"| {r['acked_per_s']:.0f} "
            f"| {r['replies']} | {'yes' if r['exactly_once'] else '**no**'} | {r['all_replied_s']:.1f} "
            f"| {r['loadavg']} |"
        )
    lines += [
        "",
        "With jobs in process the same process also answers the messages while the load runs, so the",
        "acknowledgements compete with the answering for one core, as in a one-machine deployment.",
        "The load generator, the fake Graph API and the worker share the machine's other core.",
    ]
    (ROOT / "bench" / "WEBHOOK_RESULTS.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
