"""Handoff to a person over WhatsApp: the bot steps aside, staff reply through the thread, then hand it back."""

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import update

from bedel.channels.models import ChannelContact
from bedel.config import Settings
from bedel.db import create_engine, utcnow
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
from tests.polling import eventually

WA_ID = "5215512345678"
PHONE = "+525512345678"


async def post(client: httpx.AsyncClient, body: str, wamid: str) -> None:
    content, headers = signed(text_message(WA_ID, body, wamid))
    assert (await client.post("/webhooks/whatsapp", content=content, headers=headers)).status_code == 200


async def tap(client: httpx.AsyncClient, button_id: str, title: str, wamid: str) -> None:
    content, headers = signed(button_reply(WA_ID, wamid, button_id, title, replied_to="wamid.offer"))
    assert (await client.post("/webhooks/whatsapp", content=content, headers=headers)).status_code == 200


def sent_bodies(route: respx.Route) -> list[str]:
    return [sent_text(call.request) for call in route.calls]


async def the_thread(client: httpx.AsyncClient) -> dict[str, Any]:
    return dict((await client.get("/threads", params={"phone": PHONE})).json()["items"][0])


async def messages(client: httpx.AsyncClient, thread_id: str) -> list[dict[str, Any]]:
    return list((await client.get(f"/threads/{thread_id}/messages")).json()["items"])


@pytest.fixture
async def wa_client(make_client: Callable[[Settings], Any], channel_settings: Settings) -> Any:
    async with make_client(channel_settings) as client:
        yield client


@pytest.fixture
def graph() -> Any:
    with respx.mock(assert_all_called=False) as router:
        yield router.post(GRAPH_MESSAGES_URL).mock(return_value=graph_sent(WA_ID))


class TestHandoffRoundTrip:
    async def test_student_asks_for_a_person_confirms_staff_reply_and_hand_back(
        self, wa_client: httpx.AsyncClient, graph: respx.Route
    ) -> None:
        await post(wa_client, "quiero hablar con un asesor", "wamid.h1")
        await eventually(lambda: graph.call_count == 1)
        thread = await the_thread(wa_client)
        # Offered, not yet taken: the student confirms with a button.
        assert thread["status"] == "active"
        offer = json.loads(graph.calls[0].request.content)["interactive"]
        assert offer["footer"]["text"] == "¿Quieres que te atienda una persona?"
        assert sent_buttons(graph.calls[0].request) == [f"handoff:yes:{thread['id']}", f"handoff:no:{thread['id']}"]

        await tap(wa_client, f"handoff:yes:{thread['id']}", "Sí", "wamid.h1-yes")
        await eventually(lambda: graph.call_count == 2)
        thread = await the_thread(wa_client)
        assert thread["status"] == "handoff"
        assert "continuará esta conversación" in sent_bodies(graph)[1]
        waiting = (await wa_client.get("/threads", params={"status": "handoff"})).json()["items"]
        assert [t["id"] for t in waiting] == [thread["id"]]

        # While a person has the conversation the bot stays silent, and the message is kept.
        await post(wa_client, "¿sigue ahí alguien?", "wamid.h2")
        await eventually(lambda: _last_content(wa_client, thread["id"], "¿sigue ahí alguien?"))
        assert graph.call_count == 2

        reply = await wa_client.post(
            f"/threads/{thread['id']}/messages", json={"text": "Hola, soy Ana. ¿En qué te ayudo?"}
        )
        assert reply.status_code == 201
        assert (reply.json()["role"], reply.json()["delivery_status"]) == ("staff", "pending")
        await eventually(lambda: graph.call_count == 3)
        assert sent_bodies(graph)[2] == "Hola, soy Ana. ¿En qué te ayudo?"
        # The Mexican number without WhatsApp's "1", the form the Cloud API accepts.
        assert json.loads(graph.calls.last.request.content)["to"] == PHONE.removeprefix("+")

        handed_back = await wa_client.patch(f"/threads/{thread['id']}", json={"status": "active"})
        assert handed_back.json()["status"] == "active"
        await post(wa_client, "gracias", "wamid.h3")
        await eventually(lambda: graph.call_count == 4)

        history = await messages(wa_client, thread["id"])
        roles = ["user", "assistant", "assistant", "user", "staff", "user", "assistant"]
        assert [m["role"] for m in history] == roles
        assert history[4]["delivery_status"] == "sent"

    async def test_a_student_who_says_no_stays_with_the_bot(
        self, wa_client: httpx.AsyncClient, graph: respx.Route
    ) -> None:
        await post(wa_client, "quiero hablar con un asesor", "wamid.n1")
        await eventually(lambda: graph.call_count == 1)
        thread = await the_thread(wa_client)

        await tap(wa_client, f"handoff:no:{thread['id']}", "No", "wamid.n1-no")
        await eventually(lambda: graph.call_count == 2)

        assert (await the_thread(wa_client))["status"] == "active"
        assert "sigo aquí" in sent_bodies(graph)[1]

    async def test_staff_take_over_tells_the_student_and_the_bot_stops_answering(
        self, wa_client: httpx.AsyncClient, graph: respx.Route
    ) -> None:
        await post(wa_client, "hola", "wamid.t1")
        await eventually(lambda: graph.call_count == 1)
        thread = await the_thread(wa_client)

        taken = await wa_client.patch(f"/threads/{thread['id']}", json={"status": "handoff"})
        await eventually(lambda: graph.call_count == 2)
        notice = sent_text(graph.calls[-1].request)
        await post(wa_client, "¿me ayudas?", "wamid.t2")
        await eventually(lambda: _last_content(wa_client, thread["id"], "¿me ayudas?"))

        assert taken.status_code == 200
        assert "continuará esta conversación" in notice
        assert graph.call_count == 2
        history = await messages(wa_client, thread["id"])
        assert [m["content"] for m in history[-2:]] == [notice, "¿me ayudas?"]


class TestHandoffInEnglish:
    async def test_with_the_english_setting_the_offer_its_buttons_and_the_notice_are_english(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings], graph: respx.Route
    ) -> None:
        settings = make_settings(**CHANNEL_SETTINGS, language="en", contact="the registrar's office")
        async with make_client(settings) as client:
            await post(client, "I want to talk to a person", "wamid.e1")
            await eventually(lambda: graph.call_count == 1)
            thread = await the_thread(client)
            offer = json.loads(graph.calls[0].request.content)["interactive"]

            await tap(client, f"handoff:yes:{thread['id']}", "Yes", "wamid.e1-yes")
            await eventually(lambda: graph.call_count == 2)

        assert offer["body"]["text"] == "I can ask someone from the institution to help you."
        assert offer["footer"]["text"] == "Would you like a person to help you?"
        assert [button["reply"]["title"] for button in offer["action"]["buttons"]] == ["Yes", "No"]
        assert "the registrar's office will take over this conversation" in sent_bodies(graph)[1]


async def _last_content(client: httpx.AsyncClient, thread_id: str, content: str) -> bool:
    return bool((await messages(client, thread_id))[-1]["content"] == content)


class TestStaffReplyRules:
    async def test_over_24_hours_after_the_students_last_message_a_template_is_required(
        self, wa_client: httpx.AsyncClient, graph: respx.Route, clean_database: str
    ) -> None:
        await post(wa_client, "hola", "wamid.w1")
        await eventually(lambda: graph.call_count == 1)
        thread = await the_thread(wa_client)
        engine = create_engine(clean_database)
        async with engine.begin() as connection:
            await connection.execute(update(ChannelContact).values(last_inbound_at=utcnow() - timedelta(hours=25)))
        await engine.dispose()

        response = await wa_client.post(f"/threads/{thread['id']}/messages", json={"text": "¿sigues ahí?"})

        assert response.status_code == 409
        assert response.json()["error"]["code"] == "template_required"
        assert "template" in response.json()["error"]["message"]
        assert len(await messages(wa_client, thread["id"])) == 2
        assert graph.call_count == 1

    async def test_a_conversation_that_never_used_whatsapp_has_no_channel(self, wa_client: httpx.AsyncClient) -> None:
        asked = await wa_client.post("/chat", json={"phone": PHONE, "question": "hola"})

        response = await wa_client.post(f"/threads/{asked.json()['thread_id']}/messages", json={"text": "hola"})

        assert response.status_code == 409
        assert response.json()["error"]["code"] == "conflict"

    @pytest.mark.parametrize("body", [{"text": ""}, {"text": "  "}, {}, {"text": "hola", "extra": 1}])
    async def test_a_bad_reply_is_422(self, wa_client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        asked = await wa_client.post("/chat", json={"phone": PHONE, "question": "hola"})

        response = await wa_client.post(f"/threads/{asked.json()['thread_id']}/messages", json=body)

        assert response.status_code == 422

    async def test_an_unknown_thread_is_404(self, wa_client: httpx.AsyncClient) -> None:
        thread_id = "00000000-0000-0000-0000-000000000000"

        reply = await wa_client.post(f"/threads/{thread_id}/messages", json={"text": "hola"})
        status = await wa_client.patch(f"/threads/{thread_id}", json={"status": "handoff"})

        assert reply.status_code == status.status_code == 404

    async def test_an_unknown_status_is_422(self, wa_client: httpx.AsyncClient) -> None:
        asked = await wa_client.post("/chat", json={"phone": PHONE, "question": "hola"})

        response = await wa_client.patch(f"/threads/{asked.json()['thread_id']}", json={"status": "closed"})

        assert response.status_code == 422
