"""How fast `POST /webhooks/whatsapp` acknowledges Meta under load, and how soon the replies follow.

Run: `.venv/bin/python bench/webhook_ack.py [--requests N] [--concurrency C] [--no-postgres]`
(writes bench/WEBHOOK_RESULTS.md).

`bedel serve` runs as its own uvicorn process (offline engine; jobs in process, or beside one
`bedel worker`) with the WhatsApp channel pointed at bench/fake_graph.py. The load generator
posts signed Cloud API text-message notifications, each with a new wamid from one of 200
phones: first sustained (C clients, each posting again as soon as it is acknowledged), then
20 bursts of C simultaneous deliveries 200 ms apart; it records each acknowledgement's
latency, then waits until the fake Graph API has received every reply.
The goal (issue 4): p99 under 50 ms at 50 concurrent deliveries.
"""

import argparse
import asyncio
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

ROOT = Path(__file__).resolve().parent.parent
# Run as `python bench/x.py`: the repository goes on the path for the tests' shared helpers.
sys.path.insert(0, str(ROOT))
from tests.ports import free_port  # noqa: E402

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
SECRET = "bench-app-secret"
PHONE_NUMBER_ID = "106540352242922"
POSTGRES_URL = os.environ.get("BEDEL_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/bedel_wa")


def wait_http(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def notification(n: int) -> bytes:
    wa_id = f"52155{n % 200:08d}"
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
                                    "id": f"wamid.bench.{n}.{time.time_ns()}",
                                    "timestamp": str(int(time.time())),
                                    "text": {"body": "¿Cuándo es la fecha límite de pago?"},
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


async def load(base: str, requests: int, concurrency: int) -> tuple[list[float], int]:
    bodies = [notification(n) for n in range(requests)]
    latencies: list[float] = []
    errors = 0
    queue = iter(bodies)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def worker() -> None:
            nonlocal errors
            for body in queue:
                signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                started = time.perf_counter()
                response = await client.post(
                    "/webhooks/whatsapp",
                    content=body,
                    headers={"content-type": "application/json", "x-hub-signature-256": signature},
                )
                latencies.append((time.perf_counter() - started) * 1000)
                errors += response.status_code != 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


async def bursts(base: str, count: int, size: int, first: int) -> list[float]:
    """`count` bursts of `size` simultaneous deliveries, 200 ms apart: Meta's redelivery storm after an outage."""
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=httpx.Limits(max_connections=size)) as client:

        async def deliver(body: bytes) -> None:
            signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            started = time.perf_counter()
            response = await client.post(
                "/webhooks/whatsapp",
                content=body,
                headers={"content-type": "application/json", "x-hub-signature-256": signature},
            )
            response.raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)

        for burst in range(count):
            bodies = [notification(first + burst * size + n) for n in range(size)]
            await asyncio.gather(*(deliver(body) for body in bodies))
            await asyncio.sleep(0.2)
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(database: str, requests: int, concurrency: int, *, separate_worker: bool) -> dict[str, object]:
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
    }
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
    subprocess.run([str(BIN / "bedel"), "db", "upgrade"], env=env, check=True, **quiet)
    log_file = tempfile.NamedTemporaryFile(prefix="bedel-serve-", suffix=".log", delete=False)  # noqa: SIM115
    bedel = subprocess.Popen(
        [str(BIN / "bedel"), "serve", "--port", str(bedel_port)], env=env, stdout=subprocess.DEVNULL, stderr=log_file
    )
    processes = [bedel, graph]
    if separate_worker:
        # A worker listens like `bedel serve` (/healthz, /metrics): it needs ports of its own.
        ports = {"BEDEL_PORT": str(free_port()), "BEDEL_METRICS_PORT": str(free_port())}
        processes.append(subprocess.Popen([str(BIN / "bedel"), "worker"], env=env | ports, **quiet))
    try:
        wait_http(f"http://{HOST}:{graph_port}/stats")
        wait_http(f"http://{HOST}:{bedel_port}/readyz")
        asyncio.run(load(f"http://{HOST}:{bedel_port}", 50, 10))  # warm-up
        sent_before = json.load(urllib.request.urlopen(f"http://{HOST}:{graph_port}/stats"))["messages"]
        started = time.perf_counter()
        latencies, errors = asyncio.run(load(f"http://{HOST}:{bedel_port}", requests, concurrency))
        acked_s = time.perf_counter() - started
        burst = asyncio.run(bursts(f"http://{HOST}:{bedel_port}", 20, concurrency, requests))
        requests += 20 * concurrency
        deadline = time.monotonic() + 600
        sent = 0
        while time.monotonic() < deadline:
            sent = json.load(urllib.request.urlopen(f"http://{HOST}:{graph_port}/stats"))["messages"] - sent_before
            if sent >= requests:
                break
            time.sleep(0.2)
        replied_s = time.perf_counter() - started
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=60)
    # The server's own view: the access log's duration of each webhook, without the client's share.
    served = [
        event["duration_ms"]
        for line in Path(log_file.name).read_text(encoding="utf-8").splitlines()
        if line.startswith("{")
        and (event := json.loads(line)).get("event") == "request"
        and event.get("path") == "/webhooks/whatsapp"
    ]
    Path(log_file.name).unlink()
    return {
        "server_p50": statistics.median(served),
        "server_p99": percentile(served, 0.99),
        "burst_p50": statistics.median(burst),
        "burst_p99": percentile(burst, 0.99),
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies),
        "errors": errors,
        "acked_per_s": requests / acked_s,
        "replies": sent,
        "all_replied_s": replied_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        databases = [("SQLite", f"sqlite+aiosqlite:///{folder}/bench.db")]
        if not args.no_postgres:
            databases.append(("PostgreSQL", POSTGRES_URL))
        for name, url in databases:
            for separate_worker in (False, True):
                result = run(url, args.requests, args.concurrency, separate_worker=separate_worker)
                label = f"{name}, {'`bedel worker` process' if separate_worker else 'jobs in process'}"
                print(label, result, flush=True)
                rows.append((label, result))
    lines = [
        "# Webhook acknowledgement under load",
        "",
        f"`bench/webhook_ack.py`: {args.requests} signed WhatsApp text notifications (200 phones), "
        f"{args.concurrency} concurrent deliveries (each client posts its next one as soon as the last is "
        "acknowledged), against `bedel serve` (offline engine, one uvicorn worker) answering in process or "
        "beside one `bedel worker`, and bench/fake_graph.py; run on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs. Goal: p99 under 50 ms.",
        "",
        "| set-up | bursts: ack p50 ms | bursts: ack p99 ms | sustained: ack p50 ms | sustained: ack p99 ms "
        "| sustained: max ms | server-side p50 / p99 ms | errors | acks/s | replies sent | all replied after s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['burst_p50']:.1f} | {r['burst_p99']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} "
            f"| {r['max']:.1f} | {r['server_p50']:.1f} / {r['server_p99']:.1f} | {r['errors']} "
            f"| {r['acked_per_s']:.0f} "
            f"| {r['replies']} | {r['all_replied_s']:.1f} |"
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
