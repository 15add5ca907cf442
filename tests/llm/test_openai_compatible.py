"""The Chat Completions adapter against a mocked server: the SDK parses real response bodies."""

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx

from bedel.chat.tools import CallerTools
from bedel.config import Settings
from bedel.errors import UpstreamUnavailable
from bedel.llm.openai_compatible import OpenAICompatibleModel
from bedel.llm.ports import Completion, Prompt, Turn
from bedel.students.schemas import StudentRecord
from tests.clocks import BreakerClock

BASE_URL = "http://llm.test/v1"
MODEL = "llama-3.1-8b-instruct"
SERVED_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
STUDENT = StudentRecord(
    phone="+525566778899",
    name="Ana López",
    external_id="A0123",
    email="ana@example.edu",
    attributes={"program": "Ingeniería", "gpa": 9.1},
)


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "llm_provider": "openai_compatible",
        "llm_base_url": BASE_URL,
        # The field has a validation alias, so it is only populated under its env name.
        "BEDEL_LLM_API_KEY": "sk-test",
        "llm_model": MODEL,
        "llm_timeout_s": 2.0,
        "llm_max_retries": 0,
        "llm_breaker_threshold": 3,
        "llm_breaker_reset_s": 30.0,
    }
    return Settings(**(values | overrides))


def make_prompt(question: str = "¿Cuál es mi promedio?") -> Prompt:
    return Prompt(
        messages=[
            {"role": "system", "content": "Eres el asistente escolar."},
            {"role": "user", "content": question},
        ],
        question=question,
        student=STUDENT,
        history=[],
        passages=[],
        model=MODEL,
        temperature=0.2,
        max_output_tokens=300,
        language="es",
    )


def completion_body(
    content: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    usage: tuple[int, int] | None = (50, 10),
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    body: dict[str, Any] = {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": SERVED_MODEL,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
    }
    if usage is not None:
        body["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        }
    return body


def tool_call(name: str, arguments: str = "{}", call_id: str = "call_abc123") -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def chunk(
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    usage: tuple[int, int] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1741570283,
        "model": SERVED_MODEL,
        "system_fingerprint": "fp_44709d6fcb",
        "choices": [],
        "usage": None,
    }
    if usage is not None:  # the include_usage chunk: empty choices, usage filled
        body["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        }
    else:
        body["choices"] = [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}]
    return body


def sse(*chunks: dict[str, Any]) -> httpx.Response:
    text = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return httpx.Response(200, content=text.encode(), headers={"content-type": "text/event-stream"})


def sent_body(route: respx.Route, index: int) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(route.calls[index].request.content)
    return body


@pytest.fixture
def mock_llm() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def model() -> AsyncIterator[OpenAICompatibleModel]:
    llm = OpenAICompatibleModel(make_settings())
    yield llm
    await llm.aclose()


async def collect(llm: OpenAICompatibleModel, tools: CallerTools) -> list[str | Completion]:
    return [item async for item in llm.stream(make_prompt(), tools)]


class TestComplete:
    async def test_plain_answer_carries_usage_and_served_model(
        self, mock_llm: respx.MockRouter, model: OpenAICompatibleModel
    ) -> None:
        route = mock_llm.post("/chat/completions").respond(json=completion_body("Tu promedio es 9.1.", usage=(42, 7)))

        completion = await model.complete(make_prompt(), CallerTools(STUDENT))

        assert completion.text == "Tu promedio es 9.1."
        assert completion.model == SERVED_MODEL
        assert (completion.usage.input_tokens, completion.usage.output_tokens) == (42, 7)
        assert completion.usage.estimated is False
        request = route.calls[0].request
        assert request.headers["authorization"] == "Bearer sk-test"
        body = sent_body(route, 0)
        assert body["model"] == MODEL
        assert body["max_tokens"] == 300
        assert body["temperature"] == 0.2
        assert body["messages"] == make_prompt().messages
        assert [t["function"]["name"] for t in body["tools"]] == ["get_my_record", "request_human"]

    async def test_tool_result_is_sent_back_and_usage_summed(
        self, mock_llm: respx.MockRouter, model: OpenAICompatibleModel
    ) -> None:
        route = mock_llm.post("/chat/completions").mock(
            side_effect=[
                httpx.Response(200, json=completion_body(None, [tool_call("get_my_record")], (40, 12))),
                httpx.Response(200, json=completion_body("Tu promedio es 9.1.", usage=(90, 8))),
            ]
        )

        completion = await model.complete(make_prompt(), CallerTools(STUDENT))

        assert completion.text == "Tu promedio es 9.1."
        assert (completion.usage.input_tokens, completion.usage.output_tokens) == (130, 20)
        assistant, tool = sent_body(route, 1)["messages"][-2:]
        assert assistant["role"] == "assistant"
        assert assistant["tool_calls"][0]["id"] == "call_abc123"
        assert assistant["tool_calls"][0]["function"]["name"] == "get_my_record"
        assert tool["role"] == "tool"
        assert tool["tool_call_id"] == "call_abc123"
        record = json.loads(tool["content"])
        assert record["known"] is True
        assert record["name"] == "Ana López"
        assert record["external_id"] == "A0123"

    async def test_request_human_marks_handoff(self, mock_llm: respx.MockRouter, model: OpenAICompatibleModel) -> None:
        mock_llm.post("/chat/completions").mock(
            side_effect=[
                httpx.Response(
                    200,
                    json=completion_body(None, [tool_call("request_human", '{"reason": "pide una persona"}')]),
                ),
                httpx.Response(200, json=completion_body("Te comunico con una persona.")),
            ]
        )
        tools = CallerTools(STUDENT)

        completion = await model.complete(make_prompt("Quiero hablar con alguien"), tools)

        assert tools.handoff_requested is True
        assert completion.text == "Te comunico con una persona."

    async def test_stops_after_three_tool_rounds(
        self, mock_llm: respx.MockRouter, model: OpenAICompatibleModel
    ) -> None:
        route = mock_llm.post("/chat/completions").respond(
            json=completion_body("Sigo buscando.", [tool_call("get_my_record")])
        )

        completion = await model.complete(make_prompt(), CallerTools(STUDENT))

        assert route.call_count == 4  # the first request and three tool rounds
        assert completion.text == "Sigo buscando." * 4

    async def test_usage_is_estimated_when_server_reports_none(
        self, mock_llm: respx.MockRouter, model: OpenAICompatibleModel
    ) -> None:
        mock_llm.post("/chat/completions").respond(json=completion_body("Tu promedio es 9.1.", usage=None))

        completion = await model.complete(make_prompt(), CallerTools(STUDENT))

        assert completion.usage.estimated is True
        assert completion.usage.input_tokens > 0
        assert completion.usage.output_tokens > 0


class TestStream:
    async def test_deltas_join_into_the_final_completion(
        self, mock_llm: respx.MockRouter, model: OpenAICompatibleModel
    ) -> None:
        route = mock_llm.post("/chat/completions").mock(
            return_value=sse(
                chunk({"role": "assistant", "content": "", "refusal": None}),
                chunk({"content": "Tu promedio "}),
                chunk({"content": "es 9.1."}),
                chunk({}, finish_reason="stop"),
                chunk(usage=(42, 6)),
            )
        )

        items = await collect(model, CallerTools(STUDENT))

        *deltas, final = items
        assert deltas == ["Tu promedio ", "es 9.1."]
        assert isinstance(final, Completion)
        assert final.text == "Tu promedio es 9.1."
        assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.estimated) == (
            42,
            6,
            False,
        )
        assert final.model == SERVED_MODEL
        body = sent_body(route, 0)
        assert body["stream"] is True
        assert body["stream_options"] == {"include_usage": True}

    async def test_tool_call_split_across_chunks_runs_then_streaming_continues(
        self, mock_llm: respx.MockRouter, model: OpenAICompatibleModel
    ) -> None:
        opening = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_xyz",
                    "type": "function",
                    "function": {"name": "request_human", "arguments": ""},
                }
            ],
        }
        route = mock_llm.post("/chat/completions").mock(
            side_effect=[
                sse(
                    chunk(opening),
                    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"rea'}}]}),
                    chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'son": "x"}'}}]}),
                    chunk({}, finish_reason="tool_calls"),
                    chunk(usage=(40, 9)),
                ),
                sse(
                    chunk({"role": "assistant", "content": ""}),
                    chunk({"content": "Una persona te escribirá."}),
                    chunk({}, finish_reason="stop"),
                    chunk(usage=(70, 5)),
                ),
            ]
        )
        tools = CallerTools(STUDENT)

        *deltas, final = await collect(model, tools)

        assert tools.handoff_requested is True
        assert deltas == ["Una persona te escribirá."]
        assert isinstance(final, Completion)
        assert final.text == "Una persona te escribirá."
        assert (final.usage.input_tokens, final.usage.output_tokens) == (110, 14)
        assistant, tool = sent_body(route, 1)["messages"][-2:]
        assert assistant["tool_calls"] == [
            {
                "id": "call_xyz",
                "type": "function",
                "function": {"name": "request_human", "arguments": '{"reason": "x"}'},
            }
        ]
        assert tool == {"role": "tool", "tool_call_id": "call_xyz", "content": '{"handoff": true}'}

    async def test_server_error_surfaces_as_upstream_unavailable(
        self, mock_llm: respx.MockRouter, model: OpenAICompatibleModel
    ) -> None:
        mock_llm.post("/chat/completions").respond(500, json={"error": {"message": "boom"}})

        with pytest.raises(UpstreamUnavailable):
            await collect(model, CallerTools(STUDENT))


class TestFailures:
    async def test_rate_limit_is_retried_by_the_sdk_then_succeeds(self, mock_llm: respx.MockRouter) -> None:
        rate_limited = httpx.Response(
            429,
            headers={"retry-after": "1", "retry-after-ms": "10"},
            json={"error": {"message": "Rate limit reached", "type": "requests", "code": None}},
        )
        route = mock_llm.post("/chat/completions").mock(
            side_effect=[rate_limited, httpx.Response(200, json=completion_body("Hola."))]
        )
        llm = OpenAICompatibleModel(make_settings(llm_max_retries=2))

        completion = await llm.complete(make_prompt(), CallerTools(STUDENT))

        assert completion.text == "Hola."
        assert route.call_count == 2

    async def test_rate_limit_after_retries_passes_on_retry_after(
        self, mock_llm: respx.MockRouter, model: OpenAICompatibleModel
    ) -> None:
        mock_llm.post("/chat/completions").respond(
            429, headers={"retry-after": "7"}, json={"error": {"message": "Rate limit reached"}}
        )

        with pytest.raises(UpstreamUnavailable) as caught:
            await model.complete(make_prompt(), CallerTools(STUDENT))

        assert caught.value.status == 503
        assert caught.value.retry_after == 7

    @pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.ConnectTimeout])
    async def test_timeout_raises_upstream_unavailable(
        self,
        mock_llm: respx.MockRouter,
        model: OpenAICompatibleModel,
        error: type[httpx.TimeoutException],
    ) -> None:
        mock_llm.post("/chat/completions").mock(side_effect=error("timed out"))

        with pytest.raises(UpstreamUnavailable, match="did not answer in time") as caught:
            await model.complete(make_prompt(), CallerTools(STUDENT))

        assert caught.value.retry_after == 5

    async def test_connection_refused_raises_upstream_unavailable(
        self, mock_llm: respx.MockRouter, model: OpenAICompatibleModel
    ) -> None:
        mock_llm.post("/chat/completions").mock(side_effect=httpx.ConnectError("refused"))

        with pytest.raises(UpstreamUnavailable, match="is unreachable"):
            await model.complete(make_prompt(), CallerTools(STUDENT))

    async def test_storm_of_server_errors_opens_the_breaker(
        self, mock_llm: respx.MockRouter, model: OpenAICompatibleModel
    ) -> None:
        route = mock_llm.post("/chat/completions").respond(
            500, json={"error": {"message": "The server had an error", "type": "server_error"}}
        )
        for _ in range(3):  # llm_breaker_threshold
            with pytest.raises(UpstreamUnavailable) as caught:
                await model.complete(make_prompt(), CallerTools(STUDENT))
        assert caught.value.retry_after == 30  # the failure that opened it reports the pause
        assert route.call_count == 3

        with pytest.raises(UpstreamUnavailable, match="paused") as caught:
            await model.complete(make_prompt(), CallerTools(STUDENT))
        with pytest.raises(UpstreamUnavailable):
            await model.summarize("", [Turn("user", "Hola")], "es")

        assert route.call_count == 3
        assert 1 <= (caught.value.retry_after or 0) <= 30

    async def test_breaker_lets_a_call_through_after_reset(
        self, mock_llm: respx.MockRouter, breaker_clock: BreakerClock
    ) -> None:
        route = mock_llm.post("/chat/completions").mock(
            side_effect=[
                httpx.Response(503, json={"error": {"message": "overloaded"}}),
                httpx.Response(200, json=completion_body("De vuelta.")),
            ]
        )
        llm = OpenAICompatibleModel(
            make_settings(llm_breaker_threshold=1, llm_breaker_reset_s=0.05),
        )
        with pytest.raises(UpstreamUnavailable):
            await llm.complete(make_prompt(), CallerTools(STUDENT))

        breaker_clock.advance(0.1)
        completion = await llm.complete(make_prompt(), CallerTools(STUDENT))

        assert completion.text == "De vuelta."
        assert route.call_count == 2

    async def test_configuration_error_neither_opens_breaker_nor_leaks_key(
        self, mock_llm: respx.MockRouter, model: OpenAICompatibleModel
    ) -> None:
        route = mock_llm.post("/chat/completions").respond(
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
        for _ in range(5):  # more than llm_breaker_threshold
            with pytest.raises(UpstreamUnavailable, match="HTTP 401") as caught:
                await model.complete(make_prompt(), CallerTools(STUDENT))

            assert "sk-test" not in caught.value.message
            assert caught.value.__cause__ is None
        assert route.call_count == 5


class TestSummarize:
    async def test_returns_the_models_summary(self, mock_llm: respx.MockRouter, model: OpenAICompatibleModel) -> None:
        route = mock_llm.post("/chat/completions").respond(
            json=completion_body("  Ana (A0123) preguntó por su promedio: 9.1.  ")
        )
        turns = [Turn("user", "¿Cuál es mi promedio?"), Turn("assistant", "Es 9.1.")]

        summary = await model.summarize("Ana se presentó.", turns, "es")

        assert summary == "Ana (A0123) preguntó por su promedio: 9.1."
        body = sent_body(route, 0)
        assert "tools" not in body
        assert body["model"] == MODEL
        assert "language: es" in body["messages"][0]["content"]
        assert "Ana se presentó." in body["messages"][1]["content"]
        assert "assistant: Es 9.1." in body["messages"][1]["content"]


class TestClient:
    async def test_placeholder_key_when_none_is_set(
        self,
        mock_llm: respx.MockRouter,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        monkeypatch.delenv("BEDEL_LLM_API_KEY", raising=False)
        route = mock_llm.post("/chat/completions").respond(json=completion_body("Hola."))
        settings = make_settings(BEDEL_LLM_API_KEY=None)
        llm = OpenAICompatibleModel(settings)

        await llm.complete(make_prompt(), CallerTools(None))

        assert route.calls[0].request.headers["authorization"] == "Bearer not-needed"
