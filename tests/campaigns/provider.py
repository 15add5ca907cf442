"""Fake Graph APIs for the campaign tests: one mocked at the HTTP layer for the runner in the test's own process,
and one on loopback for real worker processes, which records every accepted send and fails some on purpose."""

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import respx

from tests.channels.vendors import GRAPH_MESSAGES_URL
from tests.ports import free_port, serving


class GraphTemplates:
    """The Graph API's messages endpoint: records each template sent and answers like Meta does."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.sent: list[dict[str, Any]] = []
        self.failures: dict[str, httpx.Response] = {}
        router.post(GRAPH_MESSAGES_URL).mock(side_effect=self._answer)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        failure = self.failures.get(body["to"])
        if failure is not None:
            return failure
        self.sent.append(body)
        return httpx.Response(
            200,
            json={
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": f"wamid.HBgL{len(self.sent):08d}", "message_status": "accepted"}],
            },
        )


@dataclass
class FakeGraph:
    port: int
    # Share of sends answered 503 (Meta's "service unavailable"), decided at random per request.
    failure_rate: float = 0.0
    delay_s: float = 0.0
    # Set to hold every send, once counted in `arrived`, until the test sets the event.
    hold: asyncio.Event | None = None
    arrived: int = 0
    accepted: Counter[str] = field(default_factory=Counter)
    accepted_at: list[float] = field(default_factory=list)
    failed: int = 0
    _random: random.Random = field(default_factory=lambda: random.Random(5))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v23.0"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        self.arrived += 1
        if self.hold is not None:
            await self.hold.wait()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        to = json.loads(body)["to"]
        answer: dict[str, Any]
        if self._random.random() < self.failure_rate:
            self.failed += 1
            status, answer = 503, {"error": {"message": "Service unavailable", "type": "OAuthException", "code": 2}}
        else:
            self.accepted[to] += 1
            self.accepted_at.append(time.monotonic())
            status = 200
            answer = {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": f"wamid.{to}.{self.accepted[to]}"}],
            }
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})


@asynccontextmanager
async def fake_graph(**options: Any) -> AsyncIterator[FakeGraph]:
    graph = FakeGraph(port=free_port(), **options)
    async with serving(graph, graph.port, access_log=False, lifespan="off"):
        yield graph
