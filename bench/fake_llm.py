"""A fake OpenAI-compatible upstream for the benchmarks: answers `/v1/chat/completions` at once.

The body has the shape of OpenAI's documented `chat.completion` object, so the SDK's own
parsing runs in the process under test. `FAKE_LLM_DELAY_S` (seconds, default 0) delays
every answer, to play a slow model; `POST /delay {"delay_s": 1.5}` changes it while running.
`GET /stats` counts the completions served.

Run: `uvicorn fake_llm:app --app-dir bench`.
"""

import asyncio
import itertools
import os
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
_delay_s = [float(os.environ.get("FAKE_LLM_DELAY_S", "0"))]


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


async def chat_completions(request: Request) -> JSONResponse:
    payload = await request.json()
    if _delay_s[0]:
        await asyncio.sleep(_delay_s[0])
    _served["completions"] += 1
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
    return JSONResponse(_served)


async def set_delay(request: Request) -> JSONResponse:
    _delay_s[0] = float((await request.json())["delay_s"])
    return JSONResponse({"delay_s": _delay_s[0]})


app = Starlette(
    routes=[
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/delay", set_delay, methods=["POST"]),
    ]
)
