"""The results: measured rows, goals and verdicts, and the markdown of bench/RESULTS.md."""

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import math
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from overhead_servers import GENEROUS_LIMIT, ROOT
from overhead_workload import LEVELS, QUESTIONS, SLOW_DELAY_S, SLOW_QUESTIONS

GOAL_CLIENTS = 16
GOAL_RATIO = 0.40
GOAL_P99_MS = 50.0
# Issue 15 (docs/design.md's performance budget): CPU beyond the model call, the offline turn's CPU, and
# /chat via the model against the naive endpoint's requests per second, at GOAL_CLIENTS.
CPU_BUDGET_MS = 1.2
OFFLINE_CPU_BUDGET_MS = 2.0
NAIVE_RATIO_GOAL = 0.6
SLOW_EXTRA_BUDGET_MS = 50.0


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
                f"{overhead:.2f} ms/request; budget {CPU_BUDGET_MS:.1f} ms: {verdict(overhead <= CPU_BUDGET_MS)}"
                f" ({overhead - CPU_BUDGET_MS:+.2f} ms)"
            )
    naive16 = find(rows, "naive-llm", "-", GOAL_CLIENTS)
    for db in ("sqlite", "postgres"):
        offline, bedel = find(rows, "bedel-offline", db, GOAL_CLIENTS), find(rows, "bedel-fake-llm", db, GOAL_CLIENTS)
        if offline is not None:
            lines.append(
                f"- Offline turn, {db}, {GOAL_CLIENTS} clients: {offline.cpu_ms:.2f} ms/request; budget "
                f"{OFFLINE_CPU_BUDGET_MS:.1f} ms: {verdict(offline.cpu_ms <= OFFLINE_CPU_BUDGET_MS)}"
                f" ({offline.cpu_ms - OFFLINE_CPU_BUDGET_MS:+.2f} ms)"
            )
        if bedel is not None and naive16 is not None and naive16.rps:
            ratio = bedel.rps / naive16.rps
            lines.append(
                f"- /chat via the model against the naive endpoint, {db}, {GOAL_CLIENTS} clients: "
                f"{bedel.rps:,.1f} / {naive16.rps:,.1f} req/s = {ratio:.2f}×; goal ≥ {NAIVE_RATIO_GOAL}×: "
                f"{verdict(ratio >= NAIVE_RATIO_GOAL)}"
            )
    if naive16 is not None:
        lines.append(
            f"- Reference: naive-llm costs {naive16.cpu_ms:.2f} ms of CPU per request at {GOAL_CLIENTS} clients "
            "(docs/design.md: about 2 ms on these machines)."
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
        f"{GENEROUS_LIMIT}. Every request carries a client API key: Bedel's is kept in its database (made "
        "with `bedel keys create`) and checked on each request, as a deployment's is; the bare apps ignore it.",
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
