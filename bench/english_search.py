"""What turning an English question into Spanish search words costs with a model configured.

Run: `.venv/bin/python bench/english_search.py [--delay 0.3]` (prints Markdown for bench/RESULTS.md).

One institution of the evaluation (bench/eval/institutions/pacifico) is loaded into a fresh SQLite
database; Bedel runs in process with `BEDEL_LLM_PROVIDER=openai_compatible` against the fake upstream
(bench/fake_llm.py, a real HTTP server that answers after `--delay` seconds, as a model would, and
stops at `max_tokens` as real servers do). Its Spanish document questions and its English questions
are asked from new phones, one at a time; for each kind: model calls per answer, the answer's
tokens (`usage`, which includes the search-words call) and its latency.
"""

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from overhead_servers import Fleet, free_port, uvicorn_cmd  # noqa: E402

from bedel import migrate  # noqa: E402
from bedel.app import create_app  # noqa: E402
from bedel.config import Settings  # noqa: E402

SCHOOL = ROOT / "bench" / "eval" / "institutions" / "pacifico"


def questions() -> dict[str, list[str]]:
    cases = [json.loads(line) for line in (SCHOOL / "cases.jsonl").read_text(encoding="utf-8").splitlines() if line]
    return {kind: [c["question"] for c in cases if c["kind"] == kind] for kind in ("document", "english")}


async def measure(upstream_port: int, workdir: Path, rounds: int) -> dict[str, dict[str, float]]:
    url = f"sqlite+aiosqlite:///{workdir}/bench.db"
    await asyncio.to_thread(migrate.upgrade, url)
    settings = Settings(
        _env_file=None,
        database_url=url,
        knowledge_index_dir=workdir / "index",
        llm_provider="openai_compatible",
        llm_base_url=f"http://127.0.0.1:{upstream_port}/v1",
        llm_api_key="sk-bench",
        rate_limit_per_phone="100000/minute",
        rate_limit_per_key="1000000/minute",
    )
    app = create_app(settings)
    results: dict[str, dict[str, float]] = {}
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://b") as client:
        files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in (SCHOOL / "documents").iterdir()]
        assert (await client.post("/knowledge/documents", files=files)).status_code == 200
        await app.state.bedel.knowledge.refresh()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{upstream_port}") as upstream:
            for kind, asked in questions().items():
                before = (await upstream.get("/stats")).json()["completions"]
                latencies, usages = [], []
                for number in range(rounds * len(asked)):
                    body: dict[str, Any] = {"phone": f"+5299{number:08d}", "question": asked[number % len(asked)]}
                    started = time.perf_counter()
                    response = await client.post("/chat", json=body)
                    latencies.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, response.text
                    usages.append(response.json()["usage"])
                calls = (await upstream.get("/stats")).json()["completions"] - before
                results[kind] = {
                    "answers": len(latencies),
                    "calls": calls / len(latencies),
                    "input": statistics.mean(u["input_tokens"] for u in usages),
                    "output": statistics.mean(u["output_tokens"] for u in usages),
                    "p50": statistics.median(latencies),
                    "p90": statistics.quantiles(latencies, n=10)[-1],
                }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.3, help="the fake model's seconds per call")
    parser.add_argument("--rounds", type=int, default=3, help="times each question is asked")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bedel-english-") as scratch:
        fleet = Fleet(Path(scratch))
        try:
            port = free_port()
            env = {"FAKE_LLM_DELAY_S": str(args.delay), "PATH": "/usr/bin:/bin"}
            fleet.start("fake_llm", uvicorn_cmd("fake_llm:app", port), env, port)
            results = asyncio.run(measure(port, Path(scratch), args.rounds))
        finally:
            fleet.stop_all()
    print(f"Fake model answering in {args.delay:.2f} s; {SCHOOL.name}'s questions, one at a time.\n")
    print("| questions | answers | model calls per answer | input tokens | output tokens | p50 ms | p90 ms |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for kind, row in results.items():
        name = "Spanish (document)" if kind == "document" else "English"
        print(
            f"| {name} | {row['answers']:.0f} | {row['calls']:.2f} | {row['input']:.0f} | {row['output']:.0f} "
            f"| {row['p50']:.0f} | {row['p90']:.0f} |"
        )


if __name__ == "__main__":
    main()
