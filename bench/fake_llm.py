"""A fake OpenAI-compatible upstream for the benchmarks: answers `/v1/chat/completions` at once.

The body has the shape of OpenAI's documented `chat.completion` object, so the SDK's own
parsing runs in the process under test. `FAKE_LLM_DELAY_S` (seconds, default 0) delays
every answer, to play a slow model, and `FAKE_LLM_SPREAD_S` (default 0) spreads each delay evenly
over ± that much; `POST /delay {"delay_s": 1.5, "spread_s": 0.5}` changes them while running.
`GET /stats` counts the completions served and lists the delay each one slept.

Run: `uvicorn fake_llm:app --app-dir bench`.
"""

import asyncio
import itertools
import os
import random
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ANSWER = (
    "Hola. Con gusto te ayudo. La fecha límite de pago de este periodo es el 15 de diciembre; "
    "puedes pagar en la caja de servicios escolares o por transferencia con tu matrícula como "
    "referencia. Si tienes un adeudo pendiente, acude a la oficina de servicios escolares para "
    "acordar un plan de pagos. ¿Hay algo más en lo que pueda ayudarte?"
)
_ids = itertools.count(1)
_served = {"completions": 0}
_delays: list[float] = []
_delay_s = [float(os.environ.get("FAKE_LLM_DELAY_S", "0")), float(os.environ.get("FAKE_LLM_SPREAD_S", "0"))]


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


async def chat_completions(request: Request) -> JSONResponse:
    payload = await request.json()
    delay_s, spread_s = _delay_s
    delay_s = max(0.0, random.uniform(delay_s - spread_s, delay_s + spread_s))
    if delay_s:
        await asyncio.sleep(delay_s)
    _served["completions"] += 1
    _delays.append(delay_s)
    prompt_tokens = sum(_tokens(str(message.get("content") or "")) for message in payload.get("messages", []))
    # A real server stops at max_tokens (the search-words call asks for a few).
    answer = ANSWER[: payload["max_tokens"] * 4] if payload.get("max_tokens") else ANSWER
    completion_tokens = _tokens(answer)
    return JSONResponse(
        {
            "id": f"chatcmpl-bench{next(_ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": payload.get("model") or "fake-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "system_fingerprint": None,
        }
    )


async def stats(_: Request) -> JSONResponse:
    return JSONResponse({**_served, "delays": _delays})


async def set_delay(request: Request) -> JSONResponse:
    asked = await request.json()
    _delay_s[:] = [float(asked["delay_s"]), float(asked.get("spread_s", 0))]
    return JSONResponse({"delay_s": _delay_s[0], "spread_s": _delay_s[1]})


app = Starlette(
    routes=[
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/delay", set_delay, methods=["POST"]),
    ]
)
