import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bedel.chat.tools import CallerTools
from bedel.llm.offline import SUMMARY_MAX_CHARS, OfflineModel
from bedel.llm.ports import Completion, Passage, Prompt, Turn
from bedel.llm.tokens import estimate_tokens
from bedel.students.fields import load_field_catalog
from bedel.students.schemas import StudentRecord
from bedel.terms import fold

CONTACT = "servicios escolares (55 1234 5678)"


def student(name: str | None = "Ana López", **attributes: Any) -> StudentRecord:
    return StudentRecord(
        phone="+525512345678",
        name=name,
        external_id="A0042",
        email="ana@demo.edu.mx",
        attributes=attributes,
    )


def prompt(question: str, caller: StudentRecord | None) -> Prompt:
    messages = [
        {"role": "system", "content": "Eres el asistente de la Universidad Demo."},
        {"role": "user", "content": question},
    ]
    return Prompt(messages, question, caller, [], [], "offline", 0.2, 500, "es")


@pytest.fixture(scope="module")
def model() -> OfflineModel:
    return OfflineModel(load_field_catalog(), "la Universidad Demo", CONTACT)


async def ask(model: OfflineModel, question: str, caller: StudentRecord | None) -> tuple[str, bool]:
    tools = CallerTools(caller)
    completion = await model.complete(prompt(question, caller), tools)
    return completion.text, tools.handoff_requested


class TestGreeting:
    async def test_greets_a_known_student_by_name(self, model: OfflineModel) -> None:
        answer, _ = await ask(model, "Hola, necesito ayuda.", student(adeudo="4500"))
        assert answer.startswith("¡Hola, Ana López!")
        assert "saldo pendiente" in answer

    async def test_shouted_names_are_shown_in_title_case(self, model: OfflineModel) -> None:
        answer, _ = await ask(model, "Buenos días", student(name="JUAN PÉREZ"))
        assert answer.startswith("¡Hola, Juan Pérez!")

    async def test_greets_an_unknown_caller_generically_and_offers_help(self, model: OfflineModel) -> None:
        answer, _ = await ask(model, "Hola", None)
        assert answer.startswith("¡Hola!")
        assert "la Universidad Demo" in answer and CONTACT in answer

    async def test_greeting_with_a_question_also_answers_it(self, model: OfflineModel) -> None:
        answer, _ = await ask(model, "Hola, ¿cuánto debo?", student(adeudo="4500"))
        assert answer.startswith("¡Hola, Ana López!")
        assert "$4,500.00" in answer


class TestOwnRecordAnswers:
    @pytest.mark.parametrize(
        ("attributes", "expected"),
        [
            ({"adeudo": "4500"}, "$4,500.00"),
            ({"Saldo Pendiente": 1200.5}, "$1,200.50"),
            ({"balance_due": "$3,250"}, "$3,250.00"),
            ({"montoPendiente": 0}, "$0.00"),
            ({"deuda": "Sin adeudo"}, "Sin adeudo"),
        ],
    )
    async def test_balance_from_any_schools_column(
        self, model: OfflineModel, attributes: dict[str, Any], expected: str
    ) -> None:
        answer, _ = await ask(model, "¿Cuánto debo?", student(**attributes))
        assert f"Saldo pendiente: {expected}" in answer

    async def test_answers_several_fields_at_once(self, model: OfflineModel) -> None:
        caller = student(promedio_general=9.15, Asesor="Dra. Ruiz", carrera="Derecho")
        answer, _ = await ask(model, "¿Cuál es mi promedio y quién es mi tutor?", caller)
        assert "- Promedio: 9.15\n- Tutor: Dra. Ruiz" in answer
        assert "Derecho" not in answer

    async def test_answers_a_column_the_catalog_does_not_know(self, model: OfflineModel) -> None:
        caller = student(lugar_nacimiento="Puebla")
        answer, _ = await ask(model, "¿Cuál es mi lugar de nacimiento?", caller)
        assert "Lugar nacimiento: Puebla" in answer

    async def test_answers_from_the_records_own_fields(self, model: OfflineModel) -> None:
        answer, _ = await ask(model, "¿Cuál es mi matrícula y mi correo?", student())
        assert "Matrícula: A0042" in answer and "ana@demo.edu.mx" in answer

    async def test_dates_are_shown_day_first(self, model: OfflineModel) -> None:
        caller = student(fecha_limite_pago="2025-03-15")
        answer, _ = await ask(model, "¿Cuándo es mi próximo pago?", caller)
        assert "15/03/2025" in answer

    @pytest.mark.parametrize("attributes", [{}, {"beca": ""}, {"beca": None}])
    async def test_says_so_when_the_record_lacks_the_field(
        self, model: OfflineModel, attributes: dict[str, Any]
    ) -> None:
        answer, handoff = await ask(model, "¿Tengo beca?", student(adeudo="10", **attributes))
        assert "no tengo ese dato en tu registro" in fold(answer)
        assert CONTACT in answer and "$" not in answer and not handoff


class TestProcedures:
    async def test_what_to_do_about_a_record_field_gets_the_documents_answer_too(self, model: OfflineModel) -> None:
        rules = Passage(
            chunk_id=1,
            document_id="d",
            title="Pagos",
            heading="Pagos > Adeudos",
            text="Con un adeudo vencido se bloquea el portal; se desbloquea al día siguiente de pagar en caja.",
            score=1.0,
            relevance=1.0,
        )
        question = "Me bloquearon el portal por mi adeudo, ¿qué hago?"
        asked = Prompt([], question, student(adeudo="4500"), [], [rules], "offline", 0.2, 500, "es")

        completion = await model.complete(asked, CallerTools(asked.student))

        assert "$4,500.00" in completion.text and "se desbloquea al día siguiente" in completion.text


class TestUnknownCaller:
    @pytest.mark.parametrize("question", ["¿Cuánto debo?", "¿Quién es mi tutor?", "¿Cuál es mi fecha de nacimiento?"])
    async def test_personal_question_gets_no_invented_data(self, model: OfflineModel, question: str) -> None:
        answer, _ = await ask(model, question, None)
        assert "No encuentro un registro asociado a este número" in answer
        assert CONTACT in answer and "$" not in answer and "registro:" not in answer


class TestHandoff:
    @pytest.mark.parametrize(
        "question",
        [
            "Quiero hablar con un asesor",
            "¿Me pueden llamar?",
            "Necesito hablar con una persona",
            "pásame con un humano",
            "¿hay algún agente disponible?",
        ],
    )
    async def test_request_for_a_person_calls_request_human(self, model: OfflineModel, question: str) -> None:
        answer, handoff = await ask(model, question, student(asesor="Dra. Ruiz"))
        assert handoff
        # The chat service adds the notice that a person takes over; the engine adds no record data.
        assert "Ruiz" not in answer

    async def test_asking_who_the_advisor_is_is_a_record_question(self, model: OfflineModel) -> None:
        answer, handoff = await ask(model, "¿Quién es mi asesor?", student(asesor="Dra. Ruiz"))
        assert not handoff
        assert "Tutor: Dra. Ruiz" in answer

    async def test_unknown_caller_can_ask_for_a_person(self, model: OfflineModel) -> None:
        _, handoff = await ask(model, "quiero hablar con alguien del personal", None)
        assert handoff


class TestQuestionsWithoutAnAnswer:
    @pytest.mark.parametrize("caller", [student(adeudo="4500"), None])
    async def test_general_question_points_to_the_contact(
        self, model: OfflineModel, caller: StudentRecord | None
    ) -> None:
        answer, handoff = await ask(model, "¿Qué debo hacer para inscribirme?", caller)
        assert answer.startswith("No tengo esa información")
        assert CONTACT in answer and not handoff


class TestCustomCatalog:
    async def test_answers_a_concept_only_the_custom_catalog_defines(self, tmp_path: Path) -> None:
        path = tmp_path / "fields.toml"
        path.write_text(
            '[identity]\nphone = ["celular"]\nname = ["alumno"]\nemail = ["correo"]\n'
            'external_id = ["legajo"]\n[concepts.fee]\nlabel = "Cuota mensual"\n'
            'kind = "money"\ncolumns = ["cuota_mes"]\nkeywords = ["cuota"]\n',
            encoding="utf-8",
        )
        model = OfflineModel(load_field_catalog(path), "el Instituto", CONTACT)
        answer, _ = await ask(model, "¿De cuánto es mi cuota?", student("Ana", **{"Cuota Mes": 2100}))
        assert "Cuota mensual: $2,100.00" in answer


class TestUsage:
    async def test_counts_estimated_tokens_of_prompt_and_answer(self, model: OfflineModel) -> None:
        request = prompt("¿Cuánto debo?", student(adeudo="4500"))
        completion = await model.complete(request, CallerTools(request.student))
        expected_input = sum(estimate_tokens(m["content"]) for m in request.messages)
        assert completion.model == "offline"
        assert completion.usage.estimated
        assert completion.usage.input_tokens == expected_input
        assert completion.usage.output_tokens == estimate_tokens(completion.text)


class TestStream:
    async def test_yields_word_groups_then_the_completion(self, model: OfflineModel) -> None:
        request = prompt("Hola, necesito ayuda.", student(adeudo="4500", promedio=9))
        items = [item async for item in model.stream(request, CallerTools(request.student))]
        *deltas, last = items
        assert isinstance(last, Completion)
        assert len(deltas) > 2 and all(isinstance(delta, str) for delta in deltas)
        assert "".join(str(delta) for delta in deltas) == last.text

    async def test_requests_the_handoff_once(self, model: OfflineModel) -> None:
        request = prompt("quiero hablar con una persona", None)
        tools = CallerTools(None)
        items = [item async for item in model.stream(request, tools)]
        assert tools.handoff_requested and isinstance(items[-1], Completion)


class TestSummarize:
    async def test_keeps_previous_summary_and_the_students_questions(self, model: OfflineModel) -> None:
        turns = [Turn("user", "¿Cuánto debo?"), Turn("assistant", "Debes $4,500.00")]
        summary = await model.summarize("Preguntó por su beca.", turns, "es")
        assert summary == "Preguntó por su beca.\n- Preguntó: ¿Cuánto debo?"

    async def test_truncates_long_questions(self, model: OfflineModel) -> None:
        summary = await model.summarize("", [Turn("user", "a" * 5000)], "es")
        assert len(summary) < 250 and summary.endswith("…")

    @settings(max_examples=50, deadline=None)
    @given(
        previous=st.text(max_size=3000),
        questions=st.lists(st.text(min_size=1, max_size=400), max_size=30),
    )
    def test_never_grows_past_the_bound(self, previous: str, questions: list[str]) -> None:
        model = OfflineModel(load_field_catalog(), "la Universidad Demo", CONTACT)
        turns = [Turn("user", question) for question in questions]
        summary = asyncio.run(model.summarize(previous, turns, "es"))
        assert len(summary) <= SUMMARY_MAX_CHARS
        if turns[-1:] and turns[-1].content.strip():
            newest = " ".join(turns[-1].content.split())
            assert summary.splitlines()[-1].startswith(f"- Preguntó: {newest[:100]}")
