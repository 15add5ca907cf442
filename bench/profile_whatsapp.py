"""Where the CPU of one WhatsApp message goes, webhook to reply: cProfile over the whole path, in one process.

Run: `.venv/bin/python bench/profile_whatsapp.py [--postgres URL] [--messages N] [--burst-window S]`
(prints a markdown table; bench/PROFILE.md keeps a run). Each message is a signed Cloud API notification
from a phone of its own, posted through httpx's ASGI transport; the in-process job runner answers it (burst
window, `take_in`, the chat turn, offline engine) and delivers the reply to Meta's API, mocked with respx
as its documentation answers. The run waits until the jobs table holds no unfinished channel job. The
package groups and the heaviest functions are bench/profile_turn.py's; read the shares, not the
milliseconds (cProfile slows everything about twofold).
"""

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import httpx
import respx
from sqlalchemy import event, func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_llm import ANSWER
from overhead_workload import QUESTIONS
from profile_turn import empty_postgres, table
from webhook_ack import PHONE_NUMBER_ID, SECRET, signed_headers, text_notification

GRAPH_BASE = "http://graph.bench/v23.0"
LLM_BASE = "http://llm.bench/v1"
CONCURRENCY = 16


async def messages(
    database_url: str, count: int, burst_window_s: float, model_delay_s: float | None, *, profiled: bool
) -> tuple[cProfile.Profile, float, int, int]:
    if model_delay_s is not None:
        # bench/fake_llm.py's answer, after the model's delay, through the OpenAI SDK as in production.
        os.environ |= {"BEDEL_LLM_PROVIDER": "openai_compatible", "BEDEL_LLM_BASE_URL": LLM_BASE}
        os.environ["BEDEL_LLM_API_KEY"] = "sk-bench"
    os.environ.update(
        {
            "BEDEL_DATABASE_URL": database_url,
            "BEDEL_RATE_LIMIT_PER_PHONE": "1000000/minute",
            "BEDEL_WHATSAPP_VERIFY_TOKEN": "bench",
            "BEDEL_WHATSAPP_APP_SECRET": SECRET,
            "BEDEL_WHATSAPP_ACCESS_TOKEN": "bench",
            "BEDEL_WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
            "BEDEL_WHATSAPP_API_BASE": GRAPH_BASE,
            "BEDEL_WHATSAPP_BURST_WINDOW_S": str(burst_window_s),
            "BEDEL_JOBS_IN_PROCESS": "true",
        }
    )
    from bedel import migrate
    from bedel.app import create_app
    from bedel.jobs.models import Job, JobStatus

    await asyncio.to_thread(migrate.upgrade, database_url)
    app = create_app()
    sent = iter(range(10**9))
    with respx.mock(assert_all_called=False) as graph:
        route = graph.post(f"{GRAPH_BASE}/{PHONE_NUMBER_ID}/messages").mock(
            side_effect=lambda request: httpx.Response(
                200,
                json={
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": "x", "wa_id": "x"}],
                    "messages": [{"id": f"wamid.reply{next(sent)}"}],
                },
            )
        )
        if model_delay_s is not None:
            graph.post(f"{LLM_BASE}/chat/completions").mock(side_effect=partial(completion, model_delay_s))
        graph.route(host="bench").pass_through()
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client,
        ):
            sessionmaker = app.state.bedel.sessionmaker

            async def unfinished() -> int:
                async with sessionmaker() as session:
                    query = select(func.count()).where(
                        Job.kind.like("channels.%"), Job.status.in_([JobStatus.queued, JobStatus.running])
                    )
                    return int((await session.execute(query)).scalar_one())

            async def round_of(first: int, size: int) -> None:
                async def post(n: int) -> None:
                    body = text_notification(
                        f"52155{n:08d}", f"wamid.profile.{n}.{time.time_ns()}", QUESTIONS[n % len(QUESTIONS)]
                    )
                    response = await client.post("/webhooks/whatsapp", content=body, headers=signed_headers(body))
                    response.raise_for_status()

                for start in range(first, first + size, CONCURRENCY):
                    await asyncio.gather(*(post(n) for n in range(start, min(start + CONCURRENCY, first + size))))
                # The run's own reads: one count a half-second, under 2 % of the statements.
                while True:
                    if not await unfinished():
                        return
                    await asyncio.sleep(0.5)

            await round_of(0, CONCURRENCY)  # warm-up
            statements = 0

            def counted(*_: object) -> None:
                nonlocal statements
                statements += 1

            event.listen(app.state.bedel.engine.sync_engine, "before_cursor_execute", counted)
            profile = cProfile.Profile()
            started_cpu, started = time.process_time(), time.monotonic()
            if profiled:
                profile.enable()
            await round_of(1000, count)
            profile.disable()
            event.remove(app.state.bedel.engine.sync_engine, "before_cursor_execute", counted)
            cpu_s, wall_s = time.process_time() - started_cpu, time.monotonic() - started
    print(f"{count} messages in {wall_s:.1f} s wall, {route.call_count} sends to the Graph API")
    return profile, cpu_s, count, statements


async def completion(delay_s: float, request: httpx.Request) -> httpx.Response:
    await asyncio.sleep(delay_s)
    payload = json.loads(request.content)
    answer = ANSWER[: payload["max_tokens"] * 4] if payload.get("max_tokens") else ANSWER
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-profile",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": payload["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer, "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 500, "completion_tokens": 100, "total_tokens": 600},
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", help="a PostgreSQL URL (postgresql+asyncpg://...), emptied first")
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--model-delay", type=float, help="seconds: answer through the OpenAI API, mocked, this slow")
    parser.add_argument("--plain", action="store_true", help="no cProfile: only the process CPU per message")
    parser.add_argument("--dump", help="also write the raw profile here (for pstats)")
    parser.add_argument("--burst-window", type=float, default=3.0, help="BEDEL_WHATSAPP_BURST_WINDOW_S")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)  # the search index and any .env stay out of the repository
        url = args.postgres or f"sqlite+aiosqlite:///{folder}/profile.db"
        if args.postgres:
            asyncio.run(empty_postgres(url))
        profile, cpu_s, count, statements = asyncio.run(
            messages(url, args.messages, args.burst_window, args.model_delay, profiled=not args.plain)
        )
    # The run's own count of unfinished jobs (one a half-second) is among the statements.
    print(f"{statements / count:.1f} SQL statements per message")
    if args.plain:
        print(f"{count} messages, {cpu_s / count * 1000:.2f} ms of process CPU per message, not profiled")
        return
    if args.dump:
        profile.dump_stats(args.dump)
    print("\n".join(table(pstats.Stats(profile), cpu_s, count)))


if __name__ == "__main__":
    main()
