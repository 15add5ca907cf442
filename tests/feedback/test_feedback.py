"""Answer feedback: "¿Te sirvió esta respuesta?" buttons under each answer, stored per answer, counted per day."""

import itertools
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select, update

from bedel.config import Settings
from bedel.db import create_engine, create_sessionmaker, utcnow
from bedel.feedback.models import AnswerFeedback
from bedel.jobs.models import Job, JobStatus
from tests.channels.vendors import (
    CHANNEL_SETTINGS,
    GRAPH_MESSAGES_URL,
    button_reply,
    graph_sent,
    sent_buttons,
    sent_text,
    signed,
    text_message,
)
from tests.llm_fakes import LLM_BASE_URL, completion
from tests.polling import eventually

WA_ID = "5215512345678"
OTHER_WA_ID = "5215598765432"


async def post(client: httpx.AsyncClient, payload: dict[str, Any]) -> None:
    body, headers = signed(payload)
    assert (await client.post("/webhooks/whatsapp", content=body, headers=headers)).status_code == 200


async def tap(client: httpx.AsyncClient, button_id: str, wamid: str, wa_id: str = WA_ID) -> None:
    title = "Sí" if ":yes:" in button_id else "No"
    await post(client, button_reply(wa_id, wamid, button_id, title, replied_to="wamid.out1"))


async def report(client: httpx.AsyncClient, days: int = 7) -> list[dict[str, Any]]:
    return list((await client.get("/feedback", params={"days": days})).json()["days"])


@pytest.fixture
async def wa_client(make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    async with make_client(make_settings(**CHANNEL_SETTINGS)) as client:
        yield client


@pytest.fixture
def graph() -> Any:
    ids = (f"wamid.out{n}" for n in itertools.count(1))
    with respx.mock(assert_all_called=False) as router:
        yield router.post(GRAPH_MESSAGES_URL).mock(side_effect=lambda _: graph_sent(WA_ID, next(ids)))


async def an_answer(client: httpx.AsyncClient, graph: respx.Route) -> list[str]:
    """The student asks; returns the ids of the buttons under the answer."""
    await post(client, text_message(WA_ID, "¿cuándo empiezan las clases?", "wamid.q1"))
    await eventually(lambda: graph.call_count == 1)
    return sent_buttons(graph.calls[0].request)


class TestFeedbackButtons:
    async def test_an_answer_asks_whether_it_helped(self, wa_client: httpx.AsyncClient, graph: respx.Route) -> None:
        buttons = await an_answer(wa_client, graph)

        sent = json.loads(graph.calls[0].request.content)["interactive"]
        answer_id = (await wa_client.get("/threads")).json()["items"][0]["id"]
        messages = (await wa_client.get(f"/threads/{answer_id}/messages")).json()["items"]
        assert sent["type"] == "button"
        assert sent["footer"] == {"text": "¿Te sirvió esta respuesta?"}
        assert sent["body"]["text"] == messages[-1]["content"]
        assert buttons == [f"feedback:yes:{messages[-1]['id']}", f"feedback:no:{messages[-1]['id']}"]

    async def test_an_answer_too_long_for_buttons_is_followed_by_the_question_with_them(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]
    ) -> None:
        long_answer = "La inscripción tiene varios pasos. " * 40
        llm = {"llm_provider": "openai_compatible", "llm_base_url": LLM_BASE_URL, "llm_api_key": "sk-test"}
        with respx.mock(assert_all_called=False) as router:
            router.post(f"{LLM_BASE_URL}/chat/completions").mock(return_value=completion(long_answer))
            graph = router.post(GRAPH_MESSAGES_URL).mock(return_value=graph_sent(WA_ID))
            async with make_client(make_settings(**CHANNEL_SETTINGS, **llm)) as client:
                await post(client, text_message(WA_ID, "¿cómo me inscribo?", "wamid.long"))
                await eventually(lambda: graph.call_count == 2)

        first, second = (json.loads(call.request.content) for call in graph.calls)
        assert first["type"] == "text"
        assert first["text"]["body"] == long_answer.strip()
        assert second["interactive"]["body"] == {"text": "¿Te sirvió esta respuesta?"}
        buttons = sent_buttons(graph.calls[1].request)
        assert [button.split(":")[:2] for button in buttons] == [["feedback", "yes"], ["feedback", "no"]]

    async def test_a_yes_is_counted_for_today_and_needs_no_reply(
        self, wa_client: httpx.AsyncClient, graph: respx.Route
    ) -> None:
        yes, _ = await an_answer(wa_client, graph)

        await tap(wa_client, yes, "wamid.tap1")
        await eventually(lambda: _reported(wa_client))

        assert await report(wa_client) == [{"day": utcnow().date().isoformat(), "helpful": 1, "not_helpful": 0}]
        assert graph.call_count == 1

    async def test_a_no_gets_a_suggestion_and_a_second_tap_changes_the_verdict_not_the_count(
        self, wa_client: httpx.AsyncClient, graph: respx.Route
    ) -> None:
        yes, no = await an_answer(wa_client, graph)

        await tap(wa_client, no, "wamid.tap1")
        await eventually(lambda: graph.call_count == 2)
        first = await report(wa_client)
        await tap(wa_client, yes, "wamid.tap2")
        await eventually(lambda: _reported(wa_client, helpful=1))

        assert "de otra forma" in sent_text(graph.calls[1].request)
        assert [(d["helpful"], d["not_helpful"]) for d in first] == [(0, 1)]
        assert [(d["helpful"], d["not_helpful"]) for d in await report(wa_client)] == [(1, 0)]

    async def test_a_tap_on_another_students_answer_is_not_stored(
        self, wa_client: httpx.AsyncClient, graph: respx.Route, clean_database: str
    ) -> None:
        yes, _ = await an_answer(wa_client, graph)

        await tap(wa_client, yes, "wamid.forged", wa_id=OTHER_WA_ID)
        await tap(wa_client, "feedback:yes:not-a-uuid", "wamid.garbage")
        await eventually(lambda: _all_jobs_done(clean_database))

        assert await report(wa_client) == []


class TestFeedbackReport:
    async def test_days_count_back_from_today(
        self, wa_client: httpx.AsyncClient, graph: respx.Route, clean_database: str
    ) -> None:
        yes, _ = await an_answer(wa_client, graph)
        await tap(wa_client, yes, "wamid.tap1")
        await eventually(lambda: _reported(wa_client))
        await _age_feedback(clean_database, timedelta(days=3))

        assert await report(wa_client, days=3) == []
        three_days_ago = (utcnow() - timedelta(days=3)).date().isoformat()
        assert await report(wa_client, days=4) == [{"day": three_days_ago, "helpful": 1, "not_helpful": 0}]

    @pytest.mark.parametrize("days", ["0", "367", "una"])
    async def test_a_bad_number_of_days_is_422(self, wa_client: httpx.AsyncClient, days: str) -> None:
        response = await wa_client.get("/feedback", params={"days": days})

        assert response.status_code == 422

    async def test_staff_only(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]
    ) -> None:
        async with make_client(make_settings(api_keys="client-key", staff_api_keys="staff-key")) as client:
            as_client = await client.get("/feedback", headers={"authorization": "Bearer client-key"})
            as_staff = await client.get("/feedback", headers={"authorization": "Bearer staff-key"})

        assert (as_client.status_code, as_staff.status_code) == (403, 200)
        assert as_staff.json() == {"days": []}


async def _reported(client: httpx.AsyncClient, helpful: int | None = None) -> bool:
    days = await report(client)
    return bool(days) and (helpful is None or days[0]["helpful"] == helpful)


async def _age_feedback(database_url: str, age: timedelta) -> None:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(update(AnswerFeedback).values(created_at=utcnow() - age))
    await engine.dispose()


async def _all_jobs_done(database_url: str) -> bool:
    engine = create_engine(database_url)
    async with create_sessionmaker(engine)() as session:
        # The channels' jobs, not the periodic ones every runner enqueues.
        statuses = (await session.scalars(select(Job.status).where(Job.kind.startswith("channels.")))).all()
    await engine.dispose()
    return len(statuses) == 4 and all(status == JobStatus.done for status in statuses)
