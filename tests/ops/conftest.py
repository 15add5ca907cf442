"""A real OpenAI-compatible upstream and a fake Graph API on loopback, for the tests that start real
`bedel serve` and `bedel worker` processes (tests/ops/processes.py)."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.channels.vendors import ACCESS_TOKEN, PHONE_NUMBER_ID, graph_error, graph_sent, sent_words
from tests.llm_fakes import completion_body
from tests.ops.upstreams import FakeGraph, FakeLLM, Sent
from tests.ports import free_port, serving


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLLM]:
    upstream = FastAPI()
    port = free_port()
    fake = FakeLLM(url=f"http://127.0.0.1:{port}/v1")

    @upstream.post("/v1/chat/completions")
    async def answer(request: Request) -> dict[str, object]:
        body = await request.json()
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        fake.waiting[key] += 1
        try:
            await asyncio.sleep(fake.delay_s)
        finally:
            fake.waiting[key] -= 1
        return completion_body("ok: " + body["messages"][-1]["content"])

    async with serving(upstream, port):
        yield fake


@pytest.fixture
async def fake_graph() -> AsyncIterator[FakeGraph]:
    graph = FastAPI()
    port = free_port()
    fake = FakeGraph(root=f"http://127.0.0.1:{port}")

    @graph.post("/{sender}/v23.0/{phone_number_id}/messages")
    async def send(sender: str, phone_number_id: str, request: Request) -> JSONResponse:
        body = await request.json()
        if phone_number_id != PHONE_NUMBER_ID or request.headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
            return JSONResponse(graph_error(401, 190, "Invalid OAuth access token.").json(), status_code=401)
        fake.sent.append(Sent(body["to"], sent_words(body), sender))
        return JSONResponse(graph_sent(body["to"]).json())

    async with serving(graph, port):
        yield fake
