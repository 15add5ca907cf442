"""Knowledge search at scale: index build time, memory and search latency at 1k, 10k and 100k chunks,
and what a rebuild does to `/chat` while it runs.

Run: `.venv/bin/python bench/knowledge_search.py [--sizes 1000,10000,100000]` (prints Markdown for
bench/RESULTS.md).

The chunks are made from the demo university's documents (demo/knowledge): each synthetic chunk
is a real passage's heading and text with its sentences shuffled and a few numbers and invented
words (course codes, names) changed, so the vocabulary grows with the corpus the way a real
institution's does. Queries are the evaluation questions (bench/eval/cases.jsonl), asked through
`SearchIndex.search` exactly as `/chat` asks them (question plus context, relevance computed).

Memory is the growth of the process's resident set while building and loading one index.
The rebuild scenario runs the real app in process on SQLite holding the largest corpus, asks
/chat questions back to back, and adds one document (which rebuilds the index in a worker
thread) halfway: it reports /chat latency before and during the rebuild.
"""

import argparse
import asyncio
import json
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from bedel import migrate  # noqa: E402
from bedel.app import create_app  # noqa: E402
from bedel.config import Settings  # noqa: E402
from bedel.db import create_engine, create_sessionmaker  # noqa: E402
from bedel.knowledge.chunking import chunk_markdown  # noqa: E402
from bedel.knowledge.index import Query, SearchIndex  # noqa: E402
from bedel.knowledge.models import Document, DocumentChunk  # noqa: E402
from bedel.knowledge.parsing import parse_document  # noqa: E402
from bedel.knowledge.repository import KnowledgeRepository  # noqa: E402
from bedel.knowledge.service import add_document  # noqa: E402
from bedel.terms import split_sentences  # noqa: E402

SEARCHES = 2000


def real_passages() -> list[tuple[str, str, str]]:
    passages = []
    for path in sorted((ROOT / "demo" / "knowledge").iterdir()):
        parsed = parse_document(path.name, path.read_bytes())
        passages += [(parsed.title, chunk.heading, chunk.text) for chunk in chunk_markdown(parsed.markdown)]
    return passages


def synthetic_rows(count: int, seed: int = 7) -> list[dict[str, object]]:
    rng = random.Random(seed)
    passages = real_passages()
    rows = []
    for number in range(count):
        title, heading, text = passages[number % len(passages)]
        sentences = split_sentences(text)
        rng.shuffle(sentences)
        # Invented words (codes, surnames) make the vocabulary grow with the corpus.
        words = ("clave", "grupo", "aula", "folio")
        extra = " ".join(f"{rng.choice(words)} {rng.randrange(10**6):x}" for _ in range(3))
        rows.append(
            {
                "id": number + 1,
                "document_id": f"doc-{number // 10}",
                "title": f"{title} ({number // 10})",
                "heading": heading,
                "text": " ".join(sentences) + " " + extra,
                "embedding": None,
            }
        )
    return rows


def queries() -> list[Query]:
    cases = [json.loads(line) for line in (ROOT / "bench" / "eval" / "cases.jsonl").read_text().splitlines() if line]
    return [Query.from_text(case["question"], case.get("history", [])[-2:]) for case in cases]


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def measure_size(count: int, directory: Path) -> dict[str, float]:
    rows = synthetic_rows(count)
    before = rss_mib()
    started = time.perf_counter()
    index = SearchIndex.build(f"bench{count}", rows)
    build_s = time.perf_counter() - started
    built = rss_mib()
    started = time.perf_counter()
    index.save(directory)
    save_s = time.perf_counter() - started
    del index
    started = time.perf_counter()
    loaded = SearchIndex.load(directory, f"bench{count}")
    load_s = time.perf_counter() - started
    assert loaded is not None
    asked = queries()
    latencies = []
    for number in range(SEARCHES):
        query = asked[number % len(asked)]
        started = time.perf_counter()
        loaded.search(query, 4)
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return {
        "chunks": count,
        "build_s": build_s,
        "save_s": save_s,
        "load_s": load_s,
        "build_rss_mib": built - before,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "max_ms": latencies[-1],
    }


async def chat_during_rebuild(count: int, workdir: Path) -> dict[str, float]:
    url = f"sqlite+aiosqlite:///{workdir}/bench.db"
    await asyncio.to_thread(migrate.upgrade, url)
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    rows = synthetic_rows(count)
    documents = {name: uuid.uuid4() for name in dict.fromkeys(str(row["document_id"]) for row in rows)}
    async with sessionmaker() as session, session.begin():
        for name, document_id in documents.items():
            session.add(
                Document(
                    id=document_id,
                    source=f"{name}.md",
                    title=name,
                    content_type="text/markdown",
                    content_hash=uuid.uuid4().hex,
                    size_bytes=0,
                    chunk_count=10,
                )
            )
        await session.flush()
        values = [
            {
                "document_id": documents[str(row["document_id"])],
                "position": number,
                "heading": row["heading"],
                "text": row["text"],
                "token_count": 0,
            }
            for number, row in enumerate(rows)
        ]
        for start in range(0, len(values), 5000):
            await session.execute(insert(DocumentChunk), values[start : start + 5000])
        await KnowledgeRepository.from_session(session).new_revision()
    await engine.dispose()
    settings = Settings(
        _env_file=None,
        database_url=url,
        knowledge_index_dir=workdir / "index",
        rate_limit_per_phone="100000/minute",
        rate_limit_per_key="1000000/minute",
    )
    app = create_app(settings)
    cases = (ROOT / "bench" / "eval" / "cases.jsonl").read_text().splitlines()
    questions = [json.loads(line)["question"] for line in cases if line]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def ask(number: int) -> float:
                started = time.perf_counter()
                body = {"phone": f"+5299{number % 50:08d}", "question": questions[number % len(questions)]}
                response = await client.post("/chat", json=body)
                assert response.status_code == 200, response.text
                return (time.perf_counter() - started) * 1000

            quiet = [await ask(n) for n in range(200)]
            state = app.state.bedel
            async with state.sessionmaker() as session, session.begin():
                new = b"# Nuevo documento\n\nLa cafeteria abre de 7:00 a 19:00 horas."
                added = await add_document(session, "nuevo.md", new)
                assert added.status == "added", added
            # What the upload endpoint schedules after its commit, run here beside the questions.
            started = time.perf_counter()
            rebuild = asyncio.create_task(state.knowledge.refresh())
            during = []
            number = 200
            while not rebuild.done():
                during.append(await ask(number))
                number += 1
            await rebuild
            rebuild_s = time.perf_counter() - started
    return {
        "chunks": count,
        "quiet_p50_ms": statistics.median(quiet),
        "quiet_p99_ms": sorted(quiet)[int(len(quiet) * 0.99)],
        "quiet_max_ms": max(quiet),
        "rebuild_s": rebuild_s,
        "during_requests": len(during),
        "during_p50_ms": statistics.median(during) if during else 0.0,
        "during_p99_ms": sorted(during)[int(len(during) * 0.99)] if during else 0.0,
        "during_max_ms": max(during) if during else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure_size(size, Path(tmp) / "indexes") for size in sizes]
        rebuild = asyncio.run(chat_during_rebuild(max(sizes), Path(tmp)))
    print("| chunks | build s | save s | load s | RSS growth while building MiB | search p50 ms | p99 ms | max ms |")
    print("|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in results:
        times = f"{r['build_s']:.1f} | {r['save_s']:.2f} | {r['load_s']:.2f} | {r['build_rss_mib']:.0f}"
        print(f"| {r['chunks']:,} | {times} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.2f} |")
    print()
    print(json.dumps(rebuild, indent=2))


if __name__ == "__main__":
    main()
