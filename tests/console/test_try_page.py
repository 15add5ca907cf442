"""The try-it page (admins): ask as a student or an unknown number and see what produced the
answer, with the model mocked at the HTTP layer; nothing of it is ever written."""

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import func, select

from bedel.config import Settings
from bedel.db import Base, create_engine
from tests.console.accounts import ADMIN, MovableClock, page_token, sign_in
from tests.knowledge.documents import FEES
from tests.llm_fakes import LLM_BASE_URL, completion, sent_messages, tool_call

PAGE = "/console/try"
LUCIA = "+525512345678"
UNKNOWN = "+525599990000"
STUDENTS = (
    "matricula,nombre,telefono,adeudo,carrera\n"
    "A001,Lucía Pérez,+52 55 1234 5678,4500,Derecho\n"
    "A002,Marco Ruiz,+52 55 8765 4321,99999,Medicina\n"
)
ANSWER = "Un pago tarde lleva un recargo del 10 % [1]."


@pytest.fixture
async def admin(
    make_client: Callable[..., Any], make_settings: Callable[..., Settings], clock: MovableClock, accounts: None
) -> AsyncIterator[httpx.AsyncClient]:
    """An admin signed in, on an app with an OpenAI-compatible model, two students and the fees document."""
    settings = make_settings(
        llm_provider="openai_compatible", llm_base_url=LLM_BASE_URL, llm_api_key="sk-test", llm_max_retries=0
    )
    async with make_client(settings, clock) as client:
        await client.post("/students/import", files={"file": ("s.csv", STUDENTS, "text/csv")})
        await client.post("/knowledge/documents", files=[("files", ("pagos.md", FEES.encode(), "text/markdown"))])
        assert (await sign_in(client, *ADMIN)).status_code == 303
        yield client


async def try_question(admin: httpx.AsyncClient, phone: str, question: str) -> httpx.Response:
    token = await page_token(admin, PAGE)
    return await admin.post(PAGE, data={"csrf_token": token, "phone": phone, "question": question})


async def everything(database_url: str) -> dict[str, Any]:
    """How many rows every table holds, and the threads as stored (leases, counts, summaries)."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            counts = {
                table.name: await connection.scalar(select(func.count()).select_from(table))
                for table in Base.metadata.sorted_tables
            }
            threads = (await connection.execute(select(Base.metadata.tables["threads"]))).all()
    finally:
        await engine.dispose()
    return {"counts": counts, "threads": sorted(map(tuple, threads), key=str)}


class TestFindAStudent:
    async def test_by_part_of_the_name_phone_or_matricula(self, admin: httpx.AsyncClient) -> None:
        for search in ("pérez", "1234 56", "a001"):
            page = await admin.get(PAGE, params={"find": search})
            assert 'href="/console/try?phone=%2B525512345678">Preguntar como Lucía Pérez</a>' in page.text, search
            assert "Marco Ruiz" not in page.text

    async def test_nobody_found_offers_an_unknown_number(self, admin: httpx.AsyncClient) -> None:
        page = await admin.get(PAGE, params={"find": "Zacarías"})

        assert "Ningún estudiante coincide." in page.text

    async def test_the_chosen_student_fills_the_form(self, admin: httpx.AsyncClient) -> None:
        page = await admin.get(PAGE, params={"phone": LUCIA})

        assert f'name="phone" type="tel" value="{LUCIA}"' in page.text
        assert "Preguntarás como Lucía Pérez." in page.text

    async def test_an_unknown_number_is_said_to_be_one(self, admin: httpx.AsyncClient) -> None:
        page = await admin.get(PAGE, params={"phone": UNKNOWN})

        assert "Ningún estudiante tiene este número" in page.text


class TestAskAsAStudent:
    @respx.mock
    async def test_shows_the_answer_beside_its_passages_fields_instructions_tokens_and_time(
        self, admin: httpx.AsyncClient
    ) -> None:
        route = respx.post(f"{LLM_BASE_URL}/chat/completions").mock(
            return_value=completion(ANSWER, prompt_tokens=812, completion_tokens=23)
        )

        page = await try_question(admin, LUCIA, "¿Cuánto es el recargo si pago tarde?")

        assert page.status_code == 200
        assert "Un pago tarde lleva un recargo del 10 %.</blockquote>" in page.text
        assert "Como Lucía Pérez." in page.text
        assert "Documentos citados (1)" in page.text
        passages = page.text.split('<ol class="passages"', 1)[1].split("</ol>", 1)[0]
        assert "Colegiaturas y pagos" in passages and "Pago extemporáneo" in passages
        assert "Puntaje: <strong>" in passages and "Relevancia: <strong>" in passages
        assert "<dt>Nombre</dt><dd>Lucía Pérez</dd>" in page.text
        assert "<dd>4500</dd>" in page.text
        assert "812 de entrada + 23 de salida = 835" in page.text
        assert "<dd>gpt-4o-mini-2024-07-18</dd>" in page.text
        assert " ms</dd>" in page.text
        system = sent_messages(route.calls.last.request)[0]["content"]
        assert "Lucía Pérez" in system and "recargo del 10 %" in system and "Marco" not in system
        rendered = page.text.split('<pre class="instructions">', 1)[1].split("</pre>", 1)[0]
        assert "Lucía Pérez" in rendered and "recargo del 10 %" in rendered

    @respx.mock
    async def test_reads_the_students_conversation_as_a_turn_would(self, admin: httpx.AsyncClient) -> None:
        route = respx.post(f"{LLM_BASE_URL}/chat/completions").mock(return_value=completion("Claro."))
        await admin.post("/chat", json={"phone": LUCIA, "question": "Hola, soy de Derecho"})

        await try_question(admin, LUCIA, "¿y el recargo?")

        sent = sent_messages(route.calls.last.request)
        assert [(m["role"], m["content"]) for m in sent[1:]] == [
            ("user", "Hola, soy de Derecho"),
            ("assistant", "Claro."),
            ("user", "¿y el recargo?"),
        ]

    @respx.mock
    async def test_a_handoff_the_model_asks_for_is_shown_not_made(self, admin: httpx.AsyncClient) -> None:
        respx.post(f"{LLM_BASE_URL}/chat/completions").mock(
            side_effect=[
                completion(None, tool_calls=[tool_call("request_human", '{"reason": "beca"}')]),
                completion("Te comunico con una persona."),
            ]
        )

        page = await try_question(admin, LUCIA, "quiero hablar con alguien")

        assert "El asistente pasaría la conversación a una persona." in page.text
        assert (await admin.get("/threads", params={"phone": LUCIA})).json()["items"] == []

    @respx.mock
    async def test_a_conversation_a_person_has_is_said_to_be_theirs(
        self, admin: httpx.AsyncClient, clean_database: str
    ) -> None:
        respx.post(f"{LLM_BASE_URL}/chat/completions").mock(
            side_effect=[
                completion(None, tool_calls=[tool_call("request_human", "{}")]),
                completion("Te comunico con una persona."),
                completion(ANSWER),
            ]
        )
        await admin.post("/chat", json={"phone": LUCIA, "question": "quiero hablar con alguien"})
        before = await everything(clean_database)

        page = await try_question(admin, LUCIA, "¿Cuánto es el recargo?")

        assert "Una persona atiende esta conversación ahora" in page.text
        assert "Un pago tarde lleva un recargo del 10 %.</blockquote>" in page.text
        assert await everything(clean_database) == before


class TestAskAsAnUnknownNumber:
    @respx.mock
    async def test_answers_from_the_documents_with_no_record(self, admin: httpx.AsyncClient) -> None:
        route = respx.post(f"{LLM_BASE_URL}/chat/completions").mock(return_value=completion(ANSWER))

        page = await try_question(admin, "55 9999 0000", "¿Cuánto es el recargo si pago tarde?")

        assert page.status_code == 200
        assert "Como un número sin registro." in page.text
        assert "Sin registro: el número no es de ningún estudiante." in page.text
        assert "Pasajes recuperados (1)" in page.text
        system = sent_messages(route.calls.last.request)[0]["content"]
        assert "Lucía" not in system and "Marco" not in system


class TestNothingIsWritten:
    @respx.mock
    async def test_not_a_row_changes_for_a_student_with_a_conversation_nor_an_unknown_number(
        self, admin: httpx.AsyncClient, clean_database: str
    ) -> None:
        respx.post(f"{LLM_BASE_URL}/chat/completions").mock(return_value=completion(ANSWER))
        await admin.post("/chat", json={"phone": LUCIA, "question": "Hola"})
        token = await page_token(admin, PAGE)
        before = await everything(clean_database)
        assert before["counts"]["threads"] == 1 and before["counts"]["messages"] == 2

        for phone in (LUCIA, UNKNOWN):
            page = await admin.post(PAGE, data={"csrf_token": token, "phone": phone, "question": "¿Y el recargo?"})
            assert page.status_code == 200

        assert await everything(clean_database) == before


class TestRefused:
    @respx.mock
    async def test_an_invalid_phone_is_a_422_and_the_model_is_not_called(self, admin: httpx.AsyncClient) -> None:
        route = respx.post(f"{LLM_BASE_URL}/chat/completions").mock(return_value=completion(ANSWER))

        page = await try_question(admin, "abc", "¿Cuánto debo?")

        assert page.status_code == 422
        assert "Ese teléfono no es válido" in page.text
        assert "¿Cuánto debo?</textarea>" in page.text
        assert not route.called

    @respx.mock
    async def test_an_empty_question_is_a_422(self, admin: httpx.AsyncClient) -> None:
        route = respx.post(f"{LLM_BASE_URL}/chat/completions").mock(return_value=completion(ANSWER))

        page = await try_question(admin, LUCIA, "   ")

        assert page.status_code == 422
        assert "Escribe una pregunta." in page.text
        assert not route.called

    @respx.mock
    async def test_a_model_that_does_not_answer_is_a_503_page_that_writes_nothing(
        self, admin: httpx.AsyncClient, clean_database: str
    ) -> None:
        respx.post(f"{LLM_BASE_URL}/chat/completions").mock(return_value=httpx.Response(500, json={"error": {}}))
        before = await everything(clean_database)

        page = await try_question(admin, LUCIA, "¿Cuánto debo?")

        assert page.status_code == 503
        assert "El modelo no respondió" in page.text
        assert await everything(clean_database) == before
