"""Right answers the way students ask: record and documents together, English, WhatsApp Spanish,
handoffs and greetings in their words, and an honest "no tengo esa información"."""

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import respx

from bedel.config import Settings
from tests.llm_fakes import LLM_BASE_URL, completion, sent_messages

STUDENT = "+5216141234501"
STRANGER = "+5215500000001"
STUDENTS = "matricula,nombre,telefono,promedio,saldo_pendiente\nS001,Valeria Sánchez,614 123 4501,8.7,0\n"
DOCUMENTS = {
    "titulacion.md": (
        "# Reglamento de titulación\n\n## Titulación por promedio\n\n"
        "Para titularte por promedio se pide un promedio general mínimo de 9.0 y no haber reprobado materias.\n"
    ),
    "cuotas.md": (
        "# Cuotas 2027\n\n## Cuotas\n\n"
        "| Concepto | Importe |\n| --- | --- |\n"
        "| Inscripción (nuevo ingreso) | $3,900.00 MXN |\n"
        "| Reinscripción semestral | $3,200.00 MXN |\n"
        "| Examen extraordinario | $650.00 MXN |\n\n"
        "## Pagos\n\n"
        "La colegiatura mensual es de $4,500.00 MXN y se paga a más tardar el día 10 del mes. "
        "Después del día 10 se cobra un recargo del 10 % de la mensualidad.\n\n"
        "Depósitos y transferencias a la CLABE 012150001234567891 de BBVA.\n"
    ),
    "calendario.md": (
        "# Calendario escolar 2027\n\n## Inicio de clases\n\n"
        "Las clases del semestre agosto-diciembre inician el 9 de agosto.\n\n## Reinscripción\n\n"
        "La reinscripción es del 10 al 14 de enero para el semestre enero-junio "
        "y del 2 al 6 de agosto para el semestre agosto-diciembre.\n"
    ),
    "biblioteca.txt": "BIBLIOTECA\n\nHorario: lunes a viernes de 8:00 a 21:00 y sábados de 9:00 a 14:00.\n",
}


@pytest.fixture
async def school(make_client: Callable[[Settings], Any], settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(settings) as client:
        await load(client)
        yield client


async def load(client: httpx.AsyncClient) -> None:
    files = [("files", (name, text.encode(), "text/markdown")) for name, text in DOCUMENTS.items()]
    assert (await client.post("/knowledge/documents", files=files)).status_code == 200
    imported = await client.post("/students/import", files={"file": ("s.csv", STUDENTS, "text/csv")})
    assert imported.status_code == 200, imported.text


async def ask(client: httpx.AsyncClient, question: str, phone: str = STUDENT) -> dict[str, Any]:
    response = await client.post("/chat", json={"phone": phone, "question": question})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def cited(body: dict[str, Any]) -> list[str]:
    return [source["title"] for source in body["sources"]]


class TestRecordAndDocuments:
    async def test_a_rule_that_names_a_record_field_gets_the_rule_and_the_students_value(
        self, school: httpx.AsyncClient
    ) -> None:
        body = await ask(school, "¿Qué promedio piden para titularse por promedio?")

        assert "8.7" in body["answer"] and "9.0" in body["answer"]
        assert cited(body) == ["Reglamento de titulación"]
        # The student's value and the rule read as two paragraphs, not one run-on line.
        record, rule = body["answer"].split("\n\n")
        assert "8.7" in record and "9.0" in rule

    async def test_a_question_about_the_record_alone_is_answered_from_the_record(
        self, school: httpx.AsyncClient
    ) -> None:
        body = await ask(school, "¿cuál es mi promedio?")

        assert "8.7" in body["answer"]
        assert "9.0" not in body["answer"]

    async def test_an_unknown_number_gets_the_documents_answer_to_a_general_question(
        self, school: httpx.AsyncClient
    ) -> None:
        body = await ask(school, "¿Hasta qué día se paga la colegiatura?", phone=STRANGER)

        assert "día 10" in body["answer"]
        assert cited(body) == ["Cuotas 2027"]

    async def test_an_unknown_number_asking_personal_data_gets_no_passage(self, school: httpx.AsyncClient) -> None:
        body = await ask(school, "¿cuánto debo de colegiatura?", phone=STRANGER)

        assert "No encuentro un registro" in body["answer"]
        assert body["sources"] == []


class TestEnglish:
    async def test_an_english_question_is_answered_in_english_from_a_spanish_document(
        self, school: httpx.AsyncClient
    ) -> None:
        body = await ask(school, "When do classes start in August?", phone=STRANGER)

        assert body["answer"].startswith("This is what “Calendario escolar 2027” says:")
        assert "9 de agosto" in body["answer"]
        assert cited(body) == ["Calendario escolar 2027"]

    async def test_an_english_fee_question_finds_the_spanish_fee(self, school: httpx.AsyncClient) -> None:
        body = await ask(school, "How much is the enrollment fee?", phone=STRANGER)

        assert "3,900" in body["answer"]
        assert "3,200" not in body["answer"]

    async def test_an_english_greeting_is_answered_in_english(self, school: httpx.AsyncClient) -> None:
        body = await ask(school, "Hi, I need some help")

        assert body["answer"].startswith("Hi, Valeria Sánchez! I'm the virtual assistant")
        assert body["sources"] == []


class TestWhatsAppSpanish:
    @pytest.mark.parametrize(
        ("question", "expected"),
        [
            ("cuanto es la colegiatrua x mes??", "4,500"),
            ("xfa cuanto sale la inscripsion", "3,900"),
            ("me pasan la clabe pa depositar", "012150001234567891"),
            ("q pasa si pago despues del 10", "10 %"),
        ],
    )
    async def test_typos_and_shortcuts_still_find_the_answer(
        self, school: httpx.AsyncClient, question: str, expected: str
    ) -> None:
        body = await ask(school, question, phone=STRANGER)

        assert expected in body["answer"]
        assert cited(body) == ["Cuotas 2027"]


class TestHandoffAndGreetings:
    @pytest.mark.parametrize(
        "question",
        [
            "oye, que me atienda alguien porfa",
            "pásame con un humano",
            "quiero un asesor humano",
            "necesito que me marque alguien de finanzas",
            "I want to talk to a person",
            "Please connect me with a real person",
            "I'd like to speak with someone from the office",
        ],
    )
    async def test_asking_for_a_person_in_students_words_hands_off(
        self, school: httpx.AsyncClient, question: str
    ) -> None:
        body = await ask(school, question)

        assert body["handoff"] is True

    async def test_hola_necesito_ayuda_greets_by_name_and_says_what_bedel_does(self, school: httpx.AsyncClient) -> None:
        body = await ask(school, "Hola, necesito ayuda.")

        assert body["answer"].startswith("¡Hola, Valeria Sánchez! Soy el asistente virtual")
        assert body["sources"] == []
        assert body["handoff"] is False

    async def test_a_greeting_with_a_topic_answers_the_topic(self, school: httpx.AsyncClient) -> None:
        body = await ask(school, "Hola, ¿cuánto cuesta el examen extraordinario?", phone=STRANGER)

        assert body["answer"].startswith("¡Hola!")
        assert "650" in body["answer"]


class TestHonestWhenItDoesNotKnow:
    async def test_a_price_no_document_gives_is_not_answered_with_another_price(
        self, school: httpx.AsyncClient
    ) -> None:
        body = await ask(school, "¿Cuánto cuesta el estacionamiento?", phone=STRANGER)

        assert body["answer"].startswith("No tengo esa información.")
        assert "oficina de servicios escolares" in body["answer"]
        assert body["sources"] == []

    async def test_the_fee_next_to_the_one_asked_for_is_not_quoted(self, school: httpx.AsyncClient) -> None:
        body = await ask(school, "¿Cuánto cuesta la reinscripción?", phone=STRANGER)

        assert "3,200" in body["answer"]
        assert "3,900" not in body["answer"] and "650" not in body["answer"]

    async def test_a_fee_the_documents_do_not_list_is_not_answered_with_the_fee_of_a_namesake(
        self, school: httpx.AsyncClient
    ) -> None:
        # The table has "Examen extraordinario"; nothing says what the admission exam costs.
        body = await ask(school, "¿Cuánto cuesta el examen de admisión?", phone=STRANGER)

        assert body["answer"].startswith("No tengo esa información.")
        assert "650" not in body["answer"]
        assert body["sources"] == []

    async def test_of_a_line_with_two_dates_only_the_one_asked_for_is_quoted(self, school: httpx.AsyncClient) -> None:
        body = await ask(school, "¿Cuándo es la reinscripción para agosto-diciembre?", phone=STRANGER)

        assert "2 al 6 de agosto" in body["answer"]
        assert "10 al 14 de enero" not in body["answer"]
        assert cited(body) == ["Calendario escolar 2027"]

    async def test_the_part_asked_for_keeps_the_lines_label(self, school: httpx.AsyncClient) -> None:
        body = await ask(school, "a q hora cierra la biblio el sabado", phone=STRANGER)

        assert "Horario: … sábados de 9:00 a 14:00." in body["answer"]
        assert "21:00" not in body["answer"]


@pytest.fixture
async def llm_school(make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    settings = make_settings(
        llm_provider="openai_compatible", llm_base_url=LLM_BASE_URL, llm_api_key="sk-test", llm_max_retries=0
    )
    async with make_client(settings) as client:
        await load(client)
        yield client


def sent_body(request: httpx.Request) -> dict[str, Any]:
    return json.loads(request.content)  # type: ignore[no-any-return]


class TestWithAModel:
    @respx.mock
    async def test_an_english_question_is_turned_into_spanish_search_words_first(
        self, llm_school: httpx.AsyncClient
    ) -> None:
        route = respx.post(f"{LLM_BASE_URL}/chat/completions").mock(
            side_effect=[
                completion("cuota inscripción nuevo ingreso", prompt_tokens=90, completion_tokens=6),
                completion("The enrollment fee is $3,900.00 MXN [1].", prompt_tokens=400, completion_tokens=15),
            ]
        )

        body = await ask(llm_school, "How much do new students pay to sign up?", phone=STRANGER)

        search, answer = (sent_body(call.request) for call in route.calls)
        assert search["max_tokens"] == 40 and search["temperature"] == 0
        assert search["messages"][1] == {"role": "user", "content": "How much do new students pay to sign up?"}
        system = answer["messages"][0]["content"]
        assert "Responde siempre en English" in system
        assert "$3,900.00 MXN" in system
        assert body["answer"] == "The enrollment fee is $3,900.00 MXN."
        assert cited(body) == ["Cuotas 2027"]
        assert body["usage"] == {"input_tokens": 490, "output_tokens": 21, "total_tokens": 511}

    @respx.mock
    async def test_a_failed_search_words_call_falls_back_to_the_school_vocabulary(
        self, llm_school: httpx.AsyncClient
    ) -> None:
        route = respx.post(f"{LLM_BASE_URL}/chat/completions").mock(
            side_effect=[httpx.Response(500, json={"error": {"message": "boom"}}), completion("Fee: $3,900.00 [1].")]
        )

        body = await ask(llm_school, "How much is the enrollment fee?", phone=STRANGER)

        assert "$3,900.00 MXN" in sent_messages(route.calls.last.request)[0]["content"]
        assert cited(body) == ["Cuotas 2027"]

    @respx.mock
    async def test_a_spanish_question_costs_one_call(self, llm_school: httpx.AsyncClient) -> None:
        route = respx.post(f"{LLM_BASE_URL}/chat/completions").mock(return_value=completion("Se pide 9.0 [1]."))

        await ask(llm_school, "¿Qué promedio piden para titularse por promedio?")

        assert route.call_count == 1
        system = sent_messages(route.calls.last.request)[0]["content"]
        # The record and the passages both reach the model, even though the question names a record field.
        assert "- Promedio: 8.7" in system
        assert "promedio general mínimo de 9.0" in system
