"""Token budgets against an OpenAI-compatible model mocked at the HTTP layer with documented `usage` bodies."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
from prometheus_client import REGISTRY
from sqlalchemy import select

from bedel.budgets.models import TokenUsage
from bedel.config import Settings
from bedel.db import create_engine, create_sessionmaker
from bedel.texts.catalog import texts_for
from tests.channels.vendors import CHANNEL_SETTINGS, GRAPH_MESSAGES_URL, graph_sent, sent_buttons, sent_text, signed
from tests.channels.vendors import text_message as whatsapp_text
from tests.clocks import FakeClock
from tests.llm_fakes import LLM_BASE_URL, completion
from tests.polling import eventually

ANA = "+525512345678"
LUIS = "+525587654321"
CONTACT = "la ventanilla de servicios escolares"
# Each answer below reports 50 input and 10 output tokens, as the mocked server's `usage` says.
PER_ANSWER = 60


def budget_settings(make_settings: Callable[..., Settings], **overrides: Any) -> Settings:
    return make_settings(
        llm_provider="openai_compatible",
        llm_base_url=LLM_BASE_URL,
        llm_api_key="sk-test",
        llm_max_retries=0,
        contact=CONTACT,
        **overrides,
    )


async def ask(client: httpx.AsyncClient, phone: str, question: str = "¿cuándo son las inscripciones?") -> Any:
    response = await client.post("/chat", json={"phone": phone, "question": question})
    assert response.status_code == 200
    return response.json()


async def usage_rows(database_url: str) -> dict[tuple[str, str], tuple[int, int]]:
    engine = create_engine(database_url)
    async with create_sessionmaker(engine)() as session:
        rows = (await session.scalars(select(TokenUsage))).all()
    await engine.dispose()
    return {(row.period, row.subject): (row.input_tokens, row.output_tokens) for row in rows}


@pytest.fixture
def vendors() -> Any:
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
def model(vendors: respx.MockRouter) -> respx.Route:
    return vendors.post(f"{LLM_BASE_URL}/chat/completions").mock(return_value=completion("Del 5 al 9 de enero."))


class TestStudentDailyBudget:
    async def test_once_spent_the_student_gets_the_polite_message_and_the_model_is_not_called(
        self, make_settings: Callable[..., Settings], make_client: Callable[..., Any], model: respx.Route
    ) -> None:
        settings = budget_settings(make_settings, token_budget_student_daily=100)
        async with make_client(settings) as client:
            first, crossing = await ask(client, ANA), await ask(client, ANA)
            refused = await ask(client, ANA, "¿y las becas?")
            messages = (await client.get(f"/threads/{refused['thread_id']}/messages")).json()["items"]

        # The answer that crosses the budget is given in full; the next question is not sent to the model.
        assert first["answer"] == crossing["answer"] == "Del 5 al 9 de enero."
        assert model.call_count == 2
        expected = texts_for("es").budget_student.format(contact=CONTACT)
        assert refused["answer"] == expected
        assert CONTACT in expected and "persona" in expected
        assert refused["usage"] == {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        assert refused["handoff"] is False
        # The question and the reply are both kept for staff.
        assert [(m["role"], m["content"]) for m in messages[-2:]] == [
            ("user", "¿y las becas?"),
            ("assistant", expected),
        ]

    async def test_another_student_still_gets_answers(
        self, make_settings: Callable[..., Settings], make_client: Callable[..., Any], model: respx.Route
    ) -> None:
        settings = budget_settings(make_settings, token_budget_student_daily=50)
        async with make_client(settings) as client:
            await ask(client, ANA)
            refused = await ask(client, ANA)
            other = await ask(client, LUIS)

        assert refused["model"] == "none"
        assert other["answer"] == "Del 5 al 9 de enero."

    async def test_the_budget_is_new_the_next_utc_day(
        self, make_settings: Callable[..., Settings], make_client: Callable[..., Any], model: respx.Route
    ) -> None:
        clock = FakeClock()
        clock.now = clock.now.replace(hour=23, minute=50)
        settings = budget_settings(make_settings, token_budget_student_daily=50)
        async with make_client(settings, clock) as client:
            await ask(client, ANA)
            refused = await ask(client, ANA)
            clock.advance(timedelta(minutes=20).total_seconds())
            next_day = await ask(client, ANA)

        assert refused["model"] == "none"
        assert next_day["answer"] == "Del 5 al 9 de enero."

    async def test_usage_is_counted_as_the_model_reported_it(
        self,
        make_settings: Callable[..., Settings],
        make_client: Callable[..., Any],
        model: respx.Route,
        clean_database: str,
    ) -> None:
        clock = FakeClock()
        settings = budget_settings(make_settings)
        async with make_client(settings, clock) as client:
            await ask(client, ANA)
            await ask(client, ANA)
            await ask(client, LUIS)

        day, month = clock.now.date().isoformat(), clock.now.strftime("%Y-%m")
        assert await usage_rows(clean_database) == {
            (day, ANA): (100, 20),
            (day, LUIS): (50, 10),
            (month, "*"): (150, 30),
        }


class TestOverWhatsApp:
    async def test_the_budget_message_offers_a_person_with_the_reply_buttons(
        self,
        make_settings: Callable[..., Settings],
        make_client: Callable[..., Any],
        vendors: respx.MockRouter,
        model: respx.Route,
    ) -> None:
        graph = vendors.post(GRAPH_MESSAGES_URL).mock(return_value=graph_sent("5215512345678"))
        settings = budget_settings(make_settings, **CHANNEL_SETTINGS, token_budget_student_daily=50)
        async with make_client(settings) as client:
            for sent, text in enumerate(["hola", "¿y las becas?"], start=1):
                body, headers = signed(whatsapp_text("5215512345678", text, f"wamid.{sent}"))
                await client.post("/webhooks/whatsapp", content=body, headers=headers)
                await eventually(lambda: graph.call_count == sent)  # noqa: B023 (awaited within the loop)

        refused = graph.calls[1].request
        assert sent_text(refused) == texts_for("es").budget_student.format(contact=CONTACT)
        assert [button.split(":")[:2] for button in sent_buttons(refused)] == [["handoff", "yes"], ["handoff", "no"]]
        assert model.call_count == 1


class TestInstitutionMonthlyBudget:
    async def test_once_spent_every_student_gets_the_institution_message(
        self, make_settings: Callable[..., Settings], make_client: Callable[..., Any], model: respx.Route
    ) -> None:
        settings = budget_settings(make_settings, token_budget_student_daily=0, token_budget_institution_monthly=100)
        async with make_client(settings) as client:
            await ask(client, ANA)
            await ask(client, LUIS)
            refused = await ask(client, "+525511112222")

        assert model.call_count == 2
        assert refused["answer"] == texts_for("es").budget_institution.format(contact=CONTACT)

    async def test_the_share_spent_is_a_metric(
        self, make_settings: Callable[..., Settings], make_client: Callable[..., Any], model: respx.Route
    ) -> None:
        spent_before = (
            REGISTRY.get_sample_value("bedel_token_budget_spent_total", {"budget": "institution_monthly"}) or 0.0
        )
        settings = budget_settings(make_settings, token_budget_institution_monthly=4 * PER_ANSWER)
        async with make_client(settings) as client:
            for _ in range(3):
                await ask(client, ANA)
            used = REGISTRY.get_sample_value("bedel_token_budget_used_ratio")
            await ask(client, ANA)
            await ask(client, ANA)

        assert used == pytest.approx(0.75)
        assert REGISTRY.get_sample_value("bedel_token_budget_used_ratio") == pytest.approx(1.0)
        spent = REGISTRY.get_sample_value("bedel_token_budget_spent_total", {"budget": "institution_monthly"})
        assert spent == spent_before + 1


class TestCost:
    async def test_tokens_are_priced_from_the_committed_table(
        self, make_settings: Callable[..., Settings], make_client: Callable[..., Any], model: respx.Route
    ) -> None:
        labels = {"model": "gpt-4o-mini"}
        before = REGISTRY.get_sample_value("bedel_llm_cost_usd_total", labels) or 0.0
        async with make_client(budget_settings(make_settings, llm_model="gpt-4o-mini")) as client:
            await ask(client, ANA)

        # gpt-4o-mini: $0.15 per million input tokens, $0.60 per million output tokens.
        spent = REGISTRY.get_sample_value("bedel_llm_cost_usd_total", labels) or 0.0
        assert spent - before == pytest.approx((50 * 0.15 + 10 * 0.60) / 1_000_000)

    async def test_the_setting_overrides_a_price(
        self, make_settings: Callable[..., Settings], make_client: Callable[..., Any], model: respx.Route
    ) -> None:
        labels = {"model": "gpt-4o-mini"}
        before = REGISTRY.get_sample_value("bedel_llm_cost_usd_total", labels) or 0.0
        settings = budget_settings(make_settings, llm_model="gpt-4o-mini", model_prices={"gpt-4o-mini": (1.0, 2.0)})
        async with make_client(settings) as client:
            await ask(client, ANA)

        spent = REGISTRY.get_sample_value("bedel_llm_cost_usd_total", labels) or 0.0
        assert spent - before == pytest.approx((50 * 1.0 + 10 * 2.0) / 1_000_000)
