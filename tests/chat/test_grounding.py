"""Answers grounded in the institution's documents: retrieval, citations and honest "I don't know"."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from bedel.config import Settings
from tests.knowledge.documents import CERTIFICATES, KNOWLEDGE
from tests.llm_fakes import (
    LLM_BASE_URL,
    completion,
    embeddings_response,
    sent_inputs,
    sent_messages,
    stream_response,
)

PHONE = "+5215512345678"
SURCHARGE = "Toda mensualidad pagada tarde genera un recargo del 10 % del importe vencido."
TOPICS = ("recargo", "clases", "biblioteca", "constancia")


def llm_config(**overrides: Any) -> dict[str, Any]:
    return {
        "llm_provider": "openai_compatible",
        "llm_base_url": LLM_BASE_URL,
        "llm_api_key": "sk-test",
        "llm_max_retries": 0,
        **overrides,
    }


def topic_vector(text: str) -> list[float]:
    """A stand-in embedding model: one dimension per topic the text mentions."""
    lowered = text.lower()
    return [1.0 if topic in lowered else 0.0 for topic in TOPICS] + [0.1]


def embed(request: httpx.Request) -> httpx.Response:
    return embeddings_response([topic_vector(text) for text in sent_inputs(request)])


async def load_knowledge(client: httpx.AsyncClient) -> dict[str, str]:
    """Upload the test documents; their ids by file name."""
    files = [("files", (name, content.encode(), "text/markdown")) for name, content in KNOWLEDGE.items()]
    response = await client.post("/knowledge/documents", files=files)
    assert response.json()["added"] == len(KNOWLEDGE), response.text
    return {f["source"]: f["document"]["id"] for f in response.json()["files"]}


async def ask(client: httpx.AsyncClient, question: str, **extra: Any) -> dict[str, Any]:
    response = await client.post("/chat", json={"phone": PHONE, "question": question, **extra})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def ask_streaming(client: httpx.AsyncClient, question: str) -> list[tuple[str, dict[str, Any]]]:
    """The Server-Sent Events of a streamed answer, as (event, data) pairs."""
    response = await client.post("/chat", json={"phone": PHONE, "question": question, "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for block in response.text.strip().split("\n\n"):
        head, data = block.split("\n", 1)
        events.append((head.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


class TestOfflineAnswers:
    async def test_a_fees_question_gets_the_figure_and_cites_the_fees_document(self, client: httpx.AsyncClient) -> None:
        ids = await load_knowledge(client)

        body = await ask(client, "¿cuánto es el recargo si pago tarde?")

        assert "10 %" in body["answer"]
        assert "[1]" not in body["answer"]
        assert [s["document_id"] for s in body["sources"]] == [ids["colegiaturas.md"]]
        source = body["sources"][0]
        assert source["title"] == "Colegiaturas y pagos"
        assert source["snippet"].startswith(SURCHARGE)
        assert source["score"] > 0

    async def test_a_question_the_documents_do_not_cover_is_an_honest_i_dont_know(
        self, client: httpx.AsyncClient
    ) -> None:
        await load_knowledge(client)

        body = await ask(client, "¿dónde queda el estacionamiento para bicicletas?")

        assert body["answer"].startswith("No tengo esa información")
        assert body["sources"] == []

    async def test_a_follow_up_stays_on_the_topic_of_the_previous_question(self, client: httpx.AsyncClient) -> None:
        ids = await load_knowledge(client)
        first = await ask(client, "¿cómo pido una constancia de estudios?")

        follow_up = await ask(client, "¿y cuánto tarda?")

        assert [s["document_id"] for s in first["sources"]] == [ids["constancias.md"]]
        assert [s["document_id"] for s in follow_up["sources"]] == [ids["constancias.md"]]
        assert "3 días hábiles" in follow_up["answer"]

    async def test_an_off_topic_follow_up_is_not_answered_from_the_previous_topic(
        self, client: httpx.AsyncClient
    ) -> None:
        demo = Path(__file__).resolve().parents[2] / "demo" / "knowledge"
        files = [("files", (path.name, path.read_bytes(), "text/plain")) for path in sorted(demo.iterdir())]
        await client.post("/knowledge/documents", files=files)
        await ask(client, "¿cuánto es el recargo si pago tarde la colegiatura?")
        await ask(client, "¿el recargo se cobra cada mes que pase?")

        off_topic = await ask(client, "¿y en Francia?")

        assert off_topic["sources"] == []
        assert off_topic["answer"].startswith("No tengo esa información")

    async def test_a_streamed_offline_answer_shows_no_marker_and_ends_with_its_sources(
        self, client: httpx.AsyncClient
    ) -> None:
        ids = await load_knowledge(client)

        events = await ask_streaming(client, "¿cuánto es el recargo si pago tarde?")

        deltas = [data["text"] for name, data in events if name == "delta"]
        name, answer = events[-1]
        assert name == "answer"
        assert not any("[" in delta or "]" in delta for delta in deltas)
        assert "10 %" in "".join(deltas)
        assert "[1]" not in answer["answer"] and "10 %" in answer["answer"]
        assert [s["document_id"] for s in answer["sources"]] == [ids["colegiaturas.md"]]

    async def test_a_streamed_offline_answer_reads_exactly_as_the_stored_answer(
        self, client: httpx.AsyncClient
    ) -> None:
        await load_knowledge(client)

        events = await ask_streaming(client, "¿cuánto es el recargo si pago tarde?")

        deltas = [data["text"] for name, data in events if name == "delta"]
        assert "".join(deltas) == events[-1][1]["answer"]

    async def test_the_stored_answer_carries_its_sources(self, client: httpx.AsyncClient) -> None:
        ids = await load_knowledge(client)
        body = await ask(client, "¿cuánto es el recargo si pago tarde?")

        messages = (await client.get(f"/threads/{body['thread_id']}/messages")).json()["items"]

        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[1]["content"] == body["answer"]
        assert messages[1]["sources"] == body["sources"]
        assert messages[1]["sources"][0]["document_id"] == ids["colegiaturas.md"]


@pytest.fixture
async def llm_client(make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    async with make_client(make_settings(**llm_config())) as client:
        await load_knowledge(client)
        yield client


class TestWithAModel:
    @respx.mock
    async def test_passages_reach_the_system_prompt_numbered(self, llm_client: httpx.AsyncClient) -> None:
        route = respx.post(f"{LLM_BASE_URL}/chat/completions").mock(return_value=completion("Es del 10 %."))

        await ask(llm_client, "¿cuánto es el recargo si pago tarde?")

        system = sent_messages(route.calls.last.request)[0]["content"]
        assert "[1] Colegiaturas y pagos — Colegiaturas y pagos > Pago extemporáneo" in system
        assert SURCHARGE in system
        assert system.index("[1]") < system.index(SURCHARGE)
        assert "Biblioteca" not in system

    @respx.mock
    async def test_no_passage_tells_the_model_there_are_no_documents(self, llm_client: httpx.AsyncClient) -> None:
        route = respx.post(f"{LLM_BASE_URL}/chat/completions").mock(
            return_value=completion("No tengo esa información.")
        )

        body = await ask(llm_client, "¿dónde queda el estacionamiento para bicicletas?")

        system = sent_messages(route.calls.last.request)[0]["content"]
        assert "No se encontraron documentos" in system
        assert body["sources"] == []

    @respx.mock
    async def test_the_cited_passage_is_the_only_source_and_its_marker_is_removed(
        self, llm_client: httpx.AsyncClient
    ) -> None:
        respx.post(f"{LLM_BASE_URL}/chat/completions").mock(
            return_value=completion("Si pagas tarde, el recargo es del 10 % del importe vencido [1].")
        )

        body = await ask(llm_client, "¿cuánto es el recargo si pago tarde?")

        assert body["answer"] == "Si pagas tarde, el recargo es del 10 % del importe vencido."
        assert [s["title"] for s in body["sources"]] == ["Colegiaturas y pagos"]
        assert body["sources"][0]["snippet"].startswith(SURCHARGE)
        stored = (await llm_client.get(f"/threads/{body['thread_id']}/messages")).json()["items"][-1]
        assert stored["content"] == body["answer"]
        assert stored["sources"] == body["sources"]

    @respx.mock
    async def test_an_answer_citing_nothing_has_no_sources(self, llm_client: httpx.AsyncClient) -> None:
        respx.post(f"{LLM_BASE_URL}/chat/completions").mock(return_value=completion("Hola, ¿en qué te ayudo?"))

        body = await ask(llm_client, "¿cuánto es el recargo si pago tarde?")

        assert body["sources"] == []

    @respx.mock
    async def test_streamed_deltas_never_show_a_marker_split_across_chunks(self, llm_client: httpx.AsyncClient) -> None:
        pieces = ["El recargo es del", " 10 %", " [", "1", "]", " del importe", " vencido", " [2", ", 1]."]
        respx.post(f"{LLM_BASE_URL}/chat/completions").mock(return_value=stream_response(pieces))

        events = await ask_streaming(llm_client, "¿cuánto es el recargo si pago tarde?")

        deltas = [data["text"] for name, data in events if name == "delta"]
        name, answer = events[-1]
        assert name == "answer"
        assert not any("[" in delta or "]" in delta for delta in deltas)
        assert "".join(deltas) == answer["answer"] == "El recargo es del 10 % del importe vencido."
        assert [s["title"] for s in answer["sources"]] == ["Colegiaturas y pagos"]

    @respx.mock
    async def test_streamed_text_equals_the_answer_when_a_delta_ends_with_the_space_before_a_marker(
        self, llm_client: httpx.AsyncClient
    ) -> None:
        pieces = ["El recargo es del 10 % ", "[", "1]", " del importe vencido."]
        respx.post(f"{LLM_BASE_URL}/chat/completions").mock(return_value=stream_response(pieces))

        events = await ask_streaming(llm_client, "¿cuánto es el recargo si pago tarde?")

        deltas = [data["text"] for name, data in events if name == "delta"]
        assert "".join(deltas) == events[-1][1]["answer"] == "El recargo es del 10 % del importe vencido."


class TestWithEmbeddings:
    @respx.mock
    async def test_embeddings_are_asked_at_upload_and_at_question_time(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]
    ) -> None:
        settings = make_settings(embedding_model="text-embedding-3-small", **llm_config(llm_provider="offline"))
        route = respx.post(f"{LLM_BASE_URL}/embeddings").mock(side_effect=embed)
        async with make_client(settings) as client:
            ids = await load_knowledge(client)
            at_upload = route.call_count
            body = await ask(client, "¿cuánto es el recargo si pago tarde?")

        assert at_upload == len(KNOWLEDGE)
        assert route.call_count == at_upload + 1
        uploaded = [text for call in route.calls[:at_upload] for text in sent_inputs(call.request)]
        assert any(CERTIFICATES.splitlines()[-1] in text for text in uploaded)
        assert json.loads(route.calls.last.request.content)["model"] == "text-embedding-3-small"
        assert sent_inputs(route.calls.last.request) == ["¿cuánto es el recargo si pago tarde?"]
        assert [s["document_id"] for s in body["sources"]] == [ids["colegiaturas.md"]]

    @respx.mock
    async def test_an_embeddings_failure_at_question_time_still_answers_from_bm25(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]
    ) -> None:
        settings = make_settings(embedding_model="text-embedding-3-small", **llm_config(llm_provider="offline"))
        route = respx.post(f"{LLM_BASE_URL}/embeddings").mock(side_effect=embed)
        async with make_client(settings) as client:
            ids = await load_knowledge(client)
            route.mock(side_effect=httpx.ConnectError("embeddings server down"))
            before = route.call_count
            response = await client.post(
                "/chat", json={"phone": PHONE, "question": "¿cuánto es el recargo si pago tarde?"}
            )

        assert response.status_code == 200
        assert route.call_count == before + 1
        assert "10 %" in response.json()["answer"]
        assert [s["document_id"] for s in response.json()["sources"]] == [ids["colegiaturas.md"]]

    @respx.mock
    async def test_an_embeddings_failure_at_upload_reports_the_file_and_loads_nothing(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]
    ) -> None:
        settings = make_settings(embedding_model="text-embedding-3-small", **llm_config(llm_provider="offline"))
        respx.post(f"{LLM_BASE_URL}/embeddings").mock(side_effect=httpx.ConnectError("down"))
        async with make_client(settings) as client:
            files = [("files", ("colegiaturas.md", KNOWLEDGE["colegiaturas.md"].encode(), "text/markdown"))]
            report = (await client.post("/knowledge/documents", files=files)).json()
            listed = (await client.get("/knowledge/documents")).json()

        assert report["failed"] == 1
        assert report["files"][0]["error"].startswith("colegiaturas.md: embeddings failed")
        assert listed == []


class TestFootnotes:
    async def test_a_bracketed_number_in_a_quoted_passage_is_not_a_citation(self, client: httpx.AsyncClient) -> None:
        files = [
            ("files", ("pagos.md", "# Pagos\n\nEl recargo por pago tardío es del 10 % [2].".encode(), "text/markdown")),
            ("files", ("becas.md", b"# Becas\n\nLa beca deportiva cubre el 50 % de la colegiatura.", "text/markdown")),
        ]
        await client.post("/knowledge/documents", files=files)

        body = (
            await client.post("/chat", json={"phone": "+5215512345678", "question": "recargo por pago tardio"})
        ).json()

        assert [source["title"] for source in body["sources"]] == ["Pagos"]
        assert "10 % (2)" in body["answer"]
