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

This file runs the measurements; the pieces live beside it:

- `overhead_workload.py`: the questions, the phones and the client counts;
- `overhead_loadgen.py`: the load generator;
- `overhead_cpu.py`: CPU time from /proc, and waiting for a quiet machine;
- `overhead_servers.py`: the servers under test, the fake upstream, their databases and the roster;
- `overhead_report.py`: the rows, the goals and the markdown written to bench/RESULTS.md.
"""

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from overhead_cpu import QuietWait
from overhead_loadgen import loadgen_main
from overhead_report import Report, Row, SlowResult, code_revision, format_row_plain, print_summary, render
from overhead_servers import (
    BENCH_DIR,
    Fleet,
    Server,
    clean_env,
    drop_postgres,
    free_port,
    prepare_postgres,
    set_upstream_delay,
    start_bedel,
    upstream_completions,
    uvicorn_cmd,
    write_roster,
)
from overhead_workload import BURST_RUN, HOST, LEVELS, SLOW_DELAY_S, SLOW_QUESTIONS, SLOW_RUN

RESULTS_FILE = BENCH_DIR / "RESULTS.md"
OTHER_RESULTS = "\n# Knowledge base"


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
            "api_key": server.api_key,
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
            "api_key": server.api_key,
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
