"""Prometheus metrics: what a request, an answer and an LLM call leave behind, and where they are served."""

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from bedel import migrate
from bedel.config import Settings
from tests.clocks import BreakerClock
from tests.llm_fakes import LLM_BASE_URL, completion
from tests.ops.processes import serve_env, start_serve
from tests.ops.upstreams import FakeLLM

MODEL = "gpt-4o-mini"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def llm_settings(make_settings: Callable[..., Settings], **overrides: Any) -> Settings:
    return make_settings(
        llm_provider="openai_compatible",
        llm_base_url=LLM_BASE_URL,
        llm_api_key="sk-test",
        llm_max_retries=0,
        llm_model=MODEL,
        **overrides,
    )


class TestRequestMetrics:
    async def test_requests_are_counted_by_route_template_and_status(self, client: httpx.AsyncClient) -> None:
        chat = {"method": "POST", "route": "/chat"}
        messages = {"method": "GET", "route": "/threads/{thread_id}/messages"}
        before = (
            sample("bedel_http_requests_total", **chat, status="200"),
            sample("bedel_http_request_duration_seconds_count", **chat),
            sample("bedel_http_requests_total", **messages, status="200"),
            sample("bedel_http_requests_total", method="GET", route="unrouted", status="404"),
        )

        answer = (await client.post("/chat", json={"phone": "+34612345678", "question": "hola"})).json()
        await client.get(f"/threads/{answer['thread_id']}/messages")
        await client.get("/no/such/page")

        after = (
            sample("bedel_http_requests_total", **chat, status="200"),
            sample("bedel_http_request_duration_seconds_count", **chat),
            sample("bedel_http_requests_total", **messages, status="200"),
            sample("bedel_http_requests_total", method="GET", route="unrouted", status="404"),
        )
        assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 1]

    async def test_an_oversized_body_is_counted_as_413(self, client: httpx.AsyncClient) -> None:
        before = sample("bedel_http_requests_total", method="POST", route="unrouted", status="413")
        response = await client.post("/chat", content=b"x" * 70_000, headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert sample("bedel_http_requests_total", method="POST", route="unrouted", status="413") == before + 1

    async def test_each_answer_times_each_stage_once(self, client: httpx.AsyncClient) -> None:
        stages = ("llm", "database", "retrieval")
        before = [sample("bedel_chat_stage_duration_seconds_count", stage=s) for s in stages]

        for question in ("hola", "¿cuánto debo?"):
            await client.post("/chat", json={"phone": "+34612345678", "question": question})

        after = [sample("bedel_chat_stage_duration_seconds_count", stage=s) for s in stages]
        assert [a - b for a, b in zip(after, before, strict=True)] == [2, 2, 2]
        assert sample("bedel_chat_stage_duration_seconds_sum", stage="database") > 0


class TestLLMMetrics:
    @respx.mock
    async def test_calls_and_tokens_are_counted_by_model(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]
    ) -> None:
        respx.post(f"{LLM_BASE_URL}/chat/completions").mock(return_value=completion("Hola.", prompt_tokens=70))
        before = (
            sample("bedel_llm_calls_total", model=MODEL, outcome="ok"),
            sample("bedel_llm_tokens_total", model=MODEL, kind="input"),
            sample("bedel_llm_tokens_total", model=MODEL, kind="output"),
        )
        async with make_client(llm_settings(make_settings)) as client:
            response = await client.post("/chat", json={"phone": "+34612345678", "question": "hola"})

        assert response.status_code == 200
        after = (
            sample("bedel_llm_calls_total", model=MODEL, outcome="ok"),
            sample("bedel_llm_tokens_total", model=MODEL, kind="input"),
            sample("bedel_llm_tokens_total", model=MODEL, kind="output"),
        )
        assert [a - b for a, b in zip(after, before, strict=True)] == [1, 70, 10]

    @respx.mock
    async def test_failures_open_the_breaker_and_a_later_success_closes_it(
        self,
        make_client: Callable[[Settings], Any],
        make_settings: Callable[..., Settings],
        breaker_clock: BreakerClock,
    ) -> None:
        server_error = httpx.Response(
            500,
            json={"error": {"message": "The server had an error", "type": "server_error", "param": None, "code": None}},
        )
        respx.post(f"{LLM_BASE_URL}/chat/completions").mock(side_effect=[server_error, completion("Ya volví.")])
        outcomes = ("unavailable", "breaker_open", "ok")
        before = [sample("bedel_llm_calls_total", model=MODEL, outcome=o) for o in outcomes]
        settings = llm_settings(make_settings, llm_breaker_threshold=1, llm_breaker_reset_s=0.2)
        async with make_client(settings) as client:
            ask = {"phone": "+34612345678", "question": "hola"}
            failed = await client.post("/chat", json=ask)
            opened = sample("bedel_llm_breaker_state")
            fast = await client.post("/chat", json=ask)
            breaker_clock.advance(0.3)  # past the breaker's reset time
            recovered = await client.post("/chat", json=ask)

        assert [r.status_code for r in (failed, fast, recovered)] == [503, 503, 200]
        assert opened == 2
        assert sample("bedel_llm_breaker_state") == 0
        after = [sample("bedel_llm_calls_total", model=MODEL, outcome=o) for o in outcomes]
        assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]

    @respx.mock
    async def test_a_rejected_key_is_counted_apart_from_outages(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]
    ) -> None:
        respx.post(f"{LLM_BASE_URL}/chat/completions").mock(
            return_value=httpx.Response(
                401,
                json={
                    "error": {
                        "message": "Incorrect API key provided: sk-test.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
            )
        )
        before = sample("bedel_llm_calls_total", model=MODEL, outcome="rejected")
        async with make_client(llm_settings(make_settings)) as client:
            response = await client.post("/chat", json={"phone": "+34612345678", "question": "hola"})
        assert response.status_code == 503
        assert sample("bedel_llm_calls_total", model=MODEL, outcome="rejected") == before + 1


@pytest.mark.slow
class TestMetricsEndpoint:
    async def test_served_on_the_metrics_port_only_and_summed_across_processes(
        self, tmp_path: Path, fake_llm: FakeLLM
    ) -> None:
        fake_llm.delay_s = 0
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'bedel.db'}"
        await asyncio.to_thread(migrate.upgrade, database_url)
        shared = tmp_path / "prometheus"
        shared.mkdir()
        served = await start_serve(
            serve_env(database_url, fake_llm.url, PROMETHEUS_MULTIPROC_DIR=str(shared)), tmp_path
        )
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                await client.post(f"{served.url}/chat", json={"phone": "+34612345678", "question": "hola"})
                on_api = await client.get(f"{served.url}/metrics")
                scraped = await client.get(f"http://127.0.0.1:{served.metrics_port}/metrics")
        finally:
            served.stop()

        assert on_api.status_code == 404
        assert scraped.status_code == 200
        families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
        chat = [
            s.value
            for s in families["bedel_http_requests"].samples
            if s.labels == {"method": "POST", "route": "/chat", "status": "200"}
        ]
        assert chat == [1]
        assert families["bedel_llm_tokens"].samples
        assert any(shared.glob("*.db"))  # the values live in the shared folder, not in one process
