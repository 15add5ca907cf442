"""Reference endpoints for `chat_overhead.py`, served by uvicorn exactly like Bedel.

- `bare`: `POST /chat` validates Bedel's request shape with Pydantic and echoes it back;
  the ceiling any FastAPI endpoint on this machine can reach.
- `naive_llm`: `POST /chat` forwards the question to an OpenAI-compatible server through the
  `openai` SDK (an `AsyncOpenAI` on an `httpx.AsyncClient`, as Bedel builds it) and returns the
  answer: the stateless "naive endpoint" of docs/design.md's performance budget.

Run: `uvicorn bare_app:bare --app-dir bench` (or `bare_app:naive_llm` with FAKE_LLM_BASE_URL set).
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
from fastapi import FastAPI, Request
from openai import AsyncOpenAI
from pydantic import BaseModel, Field

SYSTEM_PROMPT = "Eres el asistente de la institución. Responde en español, breve y con cortesía."


class ChatBody(BaseModel):
    phone: str = Field(min_length=1, max_length=40)
    question: str = Field(min_length=1, max_length=4000)


class EchoAnswer(BaseModel):
    answer: str
    phone: str


bare = FastAPI(title="bench-bare")


@bare.post("/chat", response_model=EchoAnswer)
async def bare_chat(body: ChatBody) -> EchoAnswer:
    return EchoAnswer(answer=body.question, phone=body.phone)


@asynccontextmanager
async def _llm_client(app: FastAPI) -> AsyncIterator[None]:
    http = httpx.AsyncClient()
    client = AsyncOpenAI(
        base_url=os.environ["FAKE_LLM_BASE_URL"],
        api_key="sk-bench",
        http_client=cast(Any, http),
    )
    app.state.llm = client
    try:
        yield
    finally:
        await client.close()
        await http.aclose()


naive_llm = FastAPI(title="bench-naive-llm", lifespan=_llm_client)


@naive_llm.post("/chat", response_model=EchoAnswer)
async def naive_chat(body: ChatBody, request: Request) -> EchoAnswer:
    client: AsyncOpenAI = request.app.state.llm
    response = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": body.question},
        ],
    )
    return EchoAnswer(answer=response.choices[0].message.content or "", phone=body.phone)
