"""The peak hour of a school on one machine: students writing on WhatsApp while a 20,000-reminder campaign sends.

Run: `.venv/bin/python bench/peak_hour.py [--database sqlite|postgresql] [--duration 150] [--students 2000]
[--recipients 20000] [--sweep 25 50 100 200 300] [--concurrency N] [--no-peak]` (writes bench/PEAK_RESULTS.md,
or `--out`; needs Redis on 127.0.0.1:6379, db 14, for the rate limits two server processes share; PostgreSQL at
BEDEL_BENCH_POSTGRES_URL, which it empties).

Everything is real but the vendors: `bedel serve --workers 2` (jobs and the campaign sending in its own
processes, as on one machine), bench/fake_llm.py answering each call in 1.5 s ± 0.5 s (evenly spread), and
bench/fake_graph.py taking the sends. The roster holds `--recipients` students (the demo documents in the
knowledge base); one campaign reminds every one of them (a WhatsApp template, at the default rate limit).

The peak: `--students` of them write, each a burst of 1-3 texts 0.5-2 s apart, signed as Meta signs its
webhooks. Ten minutes are compressed into `--duration` seconds (150: four times faster), and the campaign
starts at its beginning, so it sends during the whole run (at its real rate: compressing the run does not
compress the limit). Half the students answer a reminder within a (compressed) minute of the fake Graph API
receiving it: every k-th reminder's student, k chosen so that half of them can; the other half write at
random moments of the run. The report, per compressed minute: acknowledgement p99 (client side), the time
from a burst going quiet (its last text plus the burst window, which the answer waits for by design) to its
answer reaching the fake Graph API, against the model's own delays; the campaign's sends a second against
its limit; the queue (jobs waiting; reminders not yet sent); the server processes' CPU and memory.

Then, on a fresh server with no campaign and no burst window, a short sweep of closed-loop conversations
(each sends a text as soon as the last one was answered), up to the first level that misses: the largest
number whose answer p99 stays within 10% of the model's own p99.
"""

import argparse
import asyncio
import collections
import json
import os
import random
import statistics
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from campaigns import enqueue, reset
from overhead_cpu import machine_busy_s, process_cpu_s, process_rss_mb
from overhead_servers import BIN_DIR, DEMO_KNOWLEDGE, Fleet, Server, bedel_cli, bedel_env, free_port, uvicorn_cmd
from overhead_workload import HOST, QUESTIONS
from sqlalchemy import text
from webhook_ack import PHONE_NUMBER_ID, REDIS_URL, SECRET, percentile, signed_headers, text_notification

from bedel.db import create_engine

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("BEDEL_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/bedel_bench")
MODEL_DELAY_S, MODEL_SPREAD_S = 1.5, 0.5
CAMPAIGN_RATE = 80.0  # the default BEDEL_CAMPAIGN_RATE_WHATSAPP, set explicitly
BURST_WINDOW_S = 3.0  # the default BEDEL_WHATSAPP_BURST_WINDOW_S, set explicitly
INTERVALS = 10  # compressed minutes
SWEEP_SECONDS = 20.0


def wa_id(student: int) -> str:
    """The WhatsApp id of a roster student (bench/campaigns.py's phones): Mexico's mobile "1" after 52."""
    return f"52155{10_000_000 + student:08d}"


def reply_to(student: int) -> str:
    """Where Bedel's messages to that student go: the canonical number, without the "1"."""
    return f"5255{10_000_000 + student:08d}"


@dataclass
class Burst:
    student: int
    texts: int
    started_at: float = 0.0  # unix time of the first post
    quiet_at: float = 0.0  # unix time its last text was acknowledged, plus the burst window
    acks: list[tuple[float, float]] = field(default_factory=list)  # (posted at, latency ms)


class Graph:
    """The fake Graph API's log, fetched as it grows: (time, recipient, type, start of text)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.sent: list[tuple[float, str, str, str]] = []

    async def refresh(self, client: httpx.AsyncClient) -> list[tuple[float, str, str, str]]:
        new = [tuple(entry) for entry in (await client.get(f"{self.base}/log?since={len(self.sent)}")).json()]
        self.sent += new
        return new


def start_fleet(
    fleet: Fleet, url: str, workdir: Path, *, burst_window_s: float, concurrency: int | None
) -> tuple[Server, Server, Server]:
    """The fake model, the fake Graph API, then `bedel serve --workers 2` (the knowledge base loaded first)."""
    llm_port, graph_port, port = free_port(), free_port(), free_port()
    llm_env = bedel_env(url, None) | {"FAKE_LLM_DELAY_S": str(MODEL_DELAY_S), "FAKE_LLM_SPREAD_S": str(MODEL_SPREAD_S)}
    llm = fleet.start("fake-llm", uvicorn_cmd("fake_llm:app", llm_port), llm_env, llm_port)
    graph = fleet.start("fake-graph", uvicorn_cmd("fake_graph:app", graph_port), bedel_env(url, None), graph_port)
    env = bedel_env(url, llm) | {
        "BEDEL_WORKERS": "2",
        "BEDEL_RATE_LIMIT_STORAGE_URL": REDIS_URL,
        "BEDEL_WHATSAPP_VERIFY_TOKEN": "bench",
        "BEDEL_WHATSAPP_APP_SECRET": SECRET,
        "BEDEL_WHATSAPP_ACCESS_TOKEN": "bench",
        "BEDEL_WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "BEDEL_WHATSAPP_API_BASE": f"http://{HOST}:{graph_port}/v23.0",
        "BEDEL_WHATSAPP_BURST_WINDOW_S": str(burst_window_s),
        "BEDEL_CAMPAIGN_RATE_WHATSAPP": str(CAMPAIGN_RATE),
    }
    if concurrency is not None:
        env["BEDEL_WORKER_CONCURRENCY"] = str(concurrency)
    bedel_cli(["kb", "add", str(DEMO_KNOWLEDGE)], env, workdir)
    server = fleet.start("bedel", [str(BIN_DIR / "bedel"), "serve", "--port", str(port)], env, port)
    return llm, graph, server


async def post(client: httpx.AsyncClient, student: int, number: int, question: str) -> tuple[float, float]:
    """One signed text from the student; (unix time posted, acknowledgement ms)."""
    body = text_notification(wa_id(student), f"wamid.peak.{student}.{number}.{time.time_ns()}", question)
    posted, started = time.time(), time.perf_counter()
    try:
        response = await client.post("/webhooks/whatsapp", content=body, headers=signed_headers(body))
    except (httpx.ReadError, httpx.RemoteProtocolError):
        # A kept-alive connection the server closed as it was reused: delivered again, as Meta would
        # (the same message id, so it is ledgered once); the time counts from the first attempt.
        response = await client.post("/webhooks/whatsapp", content=body, headers=signed_headers(body))
    response.raise_for_status()
    return posted, (time.perf_counter() - started) * 1000


async def write(client: httpx.AsyncClient, burst: Burst, at: float, rng: random.Random) -> None:
    await asyncio.sleep(max(0.0, at - time.time()))
    burst.started_at = time.time()
    for number in range(burst.texts):
        if number:
            await asyncio.sleep(rng.uniform(0.5, 2.0))
        burst.acks.append(await post(client, burst.student, number, QUESTIONS[(burst.student + number) % 5]))
    burst.quiet_at = time.time() + BURST_WINDOW_S


@dataclass
class Sample:
    at: float
    cpu_s: float
    busy_s: float
    rss_mb: float
    jobs_queued: int
    reminders_left: int


async def monitor(url: str, pid: int, samples: list[Sample], stop: asyncio.Event) -> None:
    """Every second: the server processes' CPU and memory, the machine's CPU, and the queues' depth."""
    engine = create_engine(url)
    try:
        while not stop.is_set():
            async with engine.connect() as connection:
                queued = (await connection.execute(text("SELECT count(*) FROM jobs WHERE status = 'queued'"))).scalar()
                left = (
                    await connection.execute(text("SELECT count(*) FROM campaign_recipients WHERE status = 'pending'"))
                ).scalar()
            samples.append(
                Sample(
                    time.time(),
                    process_cpu_s(pid),
                    machine_busy_s(),
                    process_rss_mb(pid),
                    int(queued or 0),
                    int(left or 0),
                )
            )
            await asyncio.sleep(1.0)
    finally:
        await engine.dispose()


async def peak(base: str, graph: Graph, args: argparse.Namespace, rng: random.Random) -> tuple[list[Burst], float]:
    """Run the peak from now (the campaign just started); the bursts and the unix time it began."""
    began = time.time()
    minute = args.duration / INTERVALS
    spontaneous = rng.sample(range(args.recipients), args.students - args.students // 2)
    bursts = [Burst(student, rng.randint(1, 3)) for student in spontaneous]
    # Every k-th reminder's student answers it: as many reminders as the run sends before its last minute.
    every = max(1, int(CAMPAIGN_RATE * (args.duration - minute) / (args.students // 2)))
    repliers = args.students // 2
    taken = set(spontaneous)
    reminders = 0
    async with (
        httpx.AsyncClient(base_url=base, timeout=60, limits=httpx.Limits(max_connections=200)) as client,
        httpx.AsyncClient(timeout=10) as poller,
    ):
        tasks = [asyncio.create_task(write(client, b, began + rng.uniform(0, args.duration), rng)) for b in bursts]
        while time.time() < began + args.duration and repliers:
            for at, to, kind, _ in await graph.refresh(poller):
                if kind != "template":
                    continue
                reminders += 1
                student = int(to[4:]) - 10_000_000
                if reminders % every or student in taken or not repliers:
                    continue
                taken.add(student)
                repliers -= 1
                bursts.append(burst := Burst(student, rng.randint(1, 3)))
                tasks.append(asyncio.create_task(write(client, burst, at + rng.uniform(0, minute), rng)))
            await asyncio.sleep(0.25)
        await asyncio.gather(*tasks)
    return bursts, began


def answers_of(bursts: list[Burst], sent: list[tuple[float, str, str, str]]) -> tuple[dict[int, float], int]:
    """Each burst's answer time (first non-template message after it began), and how many got theirs twice."""
    by_phone: dict[str, list[tuple[float, str]]] = collections.defaultdict(list)
    for at, to, kind, start in sent:
        if kind != "template":
            by_phone[to].append((at, start))
    answered, twice = {}, 0
    for burst in bursts:
        replies = [(at, start) for at, start in by_phone[reply_to(burst.student)] if at >= burst.started_at]
        if replies:
            answered[burst.student] = replies[0][0]
            twice += sum(start == replies[0][1] for _, start in replies) > 1
    return answered, twice


def interval_rows(
    bursts: list[Burst],
    sent: list[tuple[float, str, str, str]],
    samples: list[Sample],
    began: float,
    duration: float,
    model: list[float],
) -> list[str]:
    """A row a compressed minute; answer times also above the model's own p50 and p99 over the whole run."""
    answered, _ = answers_of(bursts, sent)
    model_p50, model_p99 = statistics.median(model), percentile(model, 0.99)
    minute = duration / INTERVALS
    rows = []
    for n in range(INTERVALS + 1):  # the last row: after the run, while the queues drain
        start, end = began + n * minute, began + (n + 1) * minute if n < INTERVALS else float("inf")
        acks = [ms for b in bursts for posted, ms in b.acks if start <= posted < end]
        waits = [
            (answered[b.student] - b.quiet_at) * 1000
            for b in bursts
            if b.student in answered and start <= b.quiet_at < end
        ]
        reminders = sum(1 for at, _, kind, _ in sent if kind == "template" and start <= at < min(end, start + minute))
        window = [s for s in samples if start <= s.at < end]
        cores = busy = rss = "–"
        if len(window) >= 2:
            span = window[-1].at - window[0].at
            cores = f"{(window[-1].cpu_s - window[0].cpu_s) / span:.2f}"
            busy = f"{(window[-1].busy_s - window[0].busy_s) / span:.2f}"
            rss = f"{max(s.rss_mb for s in window):.0f}"
        label = f"{n + 1}" if n < INTERVALS else "after"
        p50, p99 = (statistics.median(waits), percentile(waits, 0.99)) if waits else (0.0, 0.0)
        rows.append(
            f"| {label} | {len(acks)} | {percentile(acks, 0.99) if acks else 0:.0f} "
            f"| {len(waits)} | {p50:.0f} ({p50 - model_p50:+.0f}) | {p99:.0f} ({p99 - model_p99:+.0f}) "
            f"| {reminders / minute:.0f} / {CAMPAIGN_RATE:.0f} "
            f"| {max((s.jobs_queued for s in window), default=0)} | {window[-1].reminders_left if window else '–'} "
            f"| {cores} | {busy} | {rss} |"
        )
    return rows


async def sweep_level(base: str, graph: Graph, conversations: int, first_student: int) -> tuple[list[float], int]:
    """`conversations` students each asking again as soon as answered, for SWEEP_SECONDS; answer times in ms."""
    waiting: dict[str, asyncio.Future[float]] = {}
    times: list[float] = []
    stop_at = time.time() + SWEEP_SECONDS
    async with (
        httpx.AsyncClient(base_url=base, timeout=60, limits=httpx.Limits(max_connections=conversations)) as client,
        httpx.AsyncClient(timeout=10) as poller,
    ):

        async def converse(student: int) -> None:
            number = 0
            while time.time() < stop_at:
                answer = waiting[reply_to(student)] = asyncio.get_running_loop().create_future()
                posted, ms = await post(client, student, number, QUESTIONS[(student + number) % 5])
                acked = posted + ms / 1000
                times.append((await asyncio.wait_for(answer, 60) - acked) * 1000)
                number += 1

        async def follow() -> None:
            while True:
                for at, to, kind, _ in await graph.refresh(poller):
                    future = waiting.get(to)
                    if kind != "template" and future is not None and not future.done():
                        future.set_result(at)
                await asyncio.sleep(0.02)

        follower = asyncio.create_task(follow())
        try:
            await asyncio.gather(*(converse(first_student + n) for n in range(conversations)))
        finally:
            follower.cancel()
    return times, len(times)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def model_delays(llm: Server, since: int = 0) -> list[float]:
    with urllib.request.urlopen(f"http://{HOST}:{llm.port}/stats", timeout=10) as response:
        return [d * 1000 for d in json.load(response)["delays"][since:]]


async def run_sweep(url: str, workdir: Path, levels: list[int], args: argparse.Namespace) -> list[str]:
    fleet = Fleet(workdir)
    rows = []
    try:
        llm, graph_server, server = start_fleet(fleet, url, workdir, burst_window_s=0, concurrency=args.concurrency)
        base, graph = f"http://{HOST}:{server.port}", Graph(f"http://{HOST}:{graph_server.port}")
        first = args.recipients - sum(levels)  # roster students, each conversation its own
        for level in levels:
            calls_before = len(model_delays(llm))
            loadavg = load_average()
            cpu_before, started = process_cpu_s(server.pid), time.monotonic()
            times, answers = await sweep_level(base, graph, level, first)
            cores = (process_cpu_s(server.pid) - cpu_before) / (time.monotonic() - started)
            first += level
            model = model_delays(llm, calls_before)
            p99, model_p99 = percentile(times, 0.99), percentile(model, 0.99)
            rows.append(
                f"| {level} | {answers} | {answers / SWEEP_SECONDS:.1f} | {statistics.median(times):.0f} | {p99:.0f} "
                f"| {statistics.median(model):.0f} / {model_p99:.0f} | {p99 / model_p99:.2f} "
                f"| {'yes' if p99 <= 1.1 * model_p99 else '**no**'} | {cores:.2f} | {loadavg} |"
            )
            print(rows[-1], flush=True)
            if p99 > 1.1 * model_p99:
                break  # a larger number holds no better
    finally:
        fleet.stop_all()
    return rows


async def run_peak(url: str, workdir: Path, args: argparse.Namespace) -> list[str]:
    rng = random.Random(15)
    fleet = Fleet(workdir)
    try:
        llm, graph_server, server = start_fleet(
            fleet, url, workdir, burst_window_s=BURST_WINDOW_S, concurrency=args.concurrency
        )
        base, graph = f"http://{HOST}:{server.port}", Graph(f"http://{HOST}:{graph_server.port}")
        samples: list[Sample] = []
        stop = asyncio.Event()
        watcher = asyncio.create_task(monitor(url, server.pid, samples, stop))
        loadavg = load_average()
        await enqueue(url, start=True)
        bursts, began = await peak(base, graph, args, rng)
        # Every burst answered, or two minutes more at most; then 3 s for a reply sent twice to show.
        async with httpx.AsyncClient(timeout=10) as poller:
            deadline = time.time() + 120
            while time.time() < deadline and len(answers_of(bursts, graph.sent)[0]) < len(bursts):
                await graph.refresh(poller)
                await asyncio.sleep(0.5)
            await asyncio.sleep(3)
            await graph.refresh(poller)
        stop.set()
        await watcher
        model = model_delays(llm)
    finally:
        fleet.stop_all()
    answered, twice = answers_of(bursts, graph.sent)
    reminders = collections.Counter(to for _, to, kind, _ in graph.sent if kind == "template")
    texts = sum(b.texts for b in bursts)
    waits = [(answered[b.student] - b.quiet_at) * 1000 for b in bursts if b.student in answered]
    acks = [ms for b in bursts for _, ms in b.acks]
    repliers = len(bursts) - (args.students - args.students // 2)
    summary = [
        f"Run on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(began))}, {args.database}, {os.cpu_count()} CPUs, "
        f"load average at start {loadavg}; {len(bursts)} students ({repliers} answering a reminder), {texts} texts; "
        f"{len(answered)} of {len(bursts)} bursts answered, {twice} answered twice; {sum(reminders.values())} "
        f"reminders sent during the run and its drain, {sum(n > 1 for n in reminders.values())} of them twice; "
        f"the model's own delay p50 {statistics.median(model):.0f} ms, p99 {percentile(model, 0.99):.0f} ms over "
        f"{len(model)} calls ({len(model) / max(1, len(answered)):.2f} per burst answered: calls of bursts never "
        "answered count too, and a generation a newer text interrupts is asked again).",
        "",
        f"Whole run: acknowledgement p50 {statistics.median(acks):.0f} ms, p99 {percentile(acks, 0.99):.0f} ms; "
        f"answer after the burst went quiet p50 {statistics.median(waits):.0f} ms, "
        f"p99 {percentile(waits, 0.99):.0f} ms "
        f"(the model's own p50 {statistics.median(model):.0f}, p99 {percentile(model, 0.99):.0f}).",
        "",
        "| minute | texts | ack p99 ms | answers | answer p50 ms (above the model's) "
        "| answer p99 ms (above the model's) | reminders/s vs limit "
        "| jobs queued (max) | reminders left | server CPU cores | machine CPU cores | server RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *interval_rows(bursts, graph.sent, samples, began, args.duration, model),
    ]
    print("\n".join(summary), flush=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--duration", type=float, default=150.0, help="seconds the 10 minutes are compressed into")
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--sweep", type=int, nargs="*", default=[25, 50, 100, 200, 300])
    parser.add_argument("--concurrency", type=int, help="BEDEL_WORKER_CONCURRENCY (default: Bedel's own, 8)")
    parser.add_argument("--no-peak", action="store_true", help="the sweep only")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "PEAK_RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        url = POSTGRES_URL if args.database == "postgresql" else f"sqlite+aiosqlite:///{workdir / 'peak.db'}"
        asyncio.run(reset(url, args.recipients))
        sweep = asyncio.run(run_sweep(url, workdir, args.sweep, args)) if args.sweep else []
        peak_rows: list[str] = []
        if not args.no_peak:
            asyncio.run(reset(url, args.recipients))
            peak_rows = asyncio.run(run_peak(url, workdir, args))
    concurrency = f" --concurrency {args.concurrency}" if args.concurrency else ""
    lines = [
        "# The peak hour",
        "",
        f"`bench/peak_hour.py --database {args.database} --duration {args.duration:.0f} --students {args.students} "
        f"--recipients {args.recipients}{concurrency}`: ten minutes compressed into {args.duration:.0f} s "
        f"({600 / args.duration:.0f}× faster; a row is a compressed minute of {args.duration / INTERVALS:.0f} s), "
        f"`bedel serve --workers 2`, the model answering in {MODEL_DELAY_S} s ± {MODEL_SPREAD_S} s, a campaign of "
        f"{args.recipients:,} reminders at {CAMPAIGN_RATE:.0f} a second started with the run. "
        "Answer times run from the moment a burst went quiet (its last text acknowledged, plus the 3 s burst "
        "window the answer waits for by design) to the answer reaching the fake Graph API.",
        "",
        *peak_rows,
    ]
    if sweep:
        lines += [
            "",
            f"## Concurrent conversations (closed loop, {SWEEP_SECONDS:.0f} s a level, no campaign, no burst window)",
            "",
            "| conversations | answers | answers/s | answer p50 ms | answer p99 ms | model p50 / p99 ms "
            "| p99 ÷ model p99 | within 10% | server CPU cores | load average at start |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *sweep,
        ]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
