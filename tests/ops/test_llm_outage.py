"""The model answering 500 for a minute (respx, with OpenAI's documented error body; the breaker's clock moved,
not slept on): the breaker opens, students are told politely and offered a person (reply buttons on WhatsApp,
words on Twilio), a tap reaches a person without the model, and the breaker closes once the model is back."""

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from prometheus_client import REGISTRY

from bedel.config import Settings
from bedel.texts.catalog import texts_for
from tests.channels.vendors import (
    CHANNEL_SETTINGS,
    GRAPH_MESSAGES_URL,
    TWILIO_MESSAGES_URL,
    button_reply,
    graph_sent,
    sent_buttons,
    sent_text,
    signed,
    text_message,
    twilio_form,
    twilio_sent,
    twilio_signed,
)
from tests.clocks import BreakerClock
from tests.llm_fakes import LLM_BASE_URL, completion
from tests.polling import eventually

THRESHOLD = 3
RESET_S = 60.0
CONTACT = "Servicios Escolares, extensión 120"
WHATSAPP_ID, TWILIO_ID = "5215512345678", "5215587654321"
TEXTS = texts_for("es")
SERVER_ERROR = {"error": {"message": "The server had an error", "type": "server_error", "param": None, "code": None}}


@dataclass
class Vendors:
    model: respx.Route
    graph: respx.Route
    twilio: respx.Route
    down: bool = True


@pytest.fixture
def vendors() -> Any:
    with respx.mock(assert_all_called=False) as router:
        vendors = Vendors(
            model=router.post(f"{LLM_BASE_URL}/chat/completions"),
            graph=router.post(GRAPH_MESSAGES_URL).mock(return_value=graph_sent(WHATSAPP_ID)),
            twilio=router.post(TWILIO_MESSAGES_URL).mock(return_value=twilio_sent(f"whatsapp:+{TWILIO_ID}", "ok")),
        )
        vendors.model.mock(
            side_effect=lambda _: (
                httpx.Response(500, json=SERVER_ERROR)
                if vendors.down
                else completion("La inscripción cierra el viernes.")
            )
        )
        yield vendors


@pytest.fixture
async def client(make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> AsyncIterator[Any]:
    settings = make_settings(
        **CHANNEL_SETTINGS,
        llm_provider="openai_compatible",
        llm_base_url=LLM_BASE_URL,
        llm_api_key="sk-test",
        llm_max_retries=0,
        llm_breaker_threshold=THRESHOLD,
        llm_breaker_reset_s=RESET_S,
        contact=CONTACT,
    )
    async with make_client(settings) as client:
        yield client


async def ask(
    client: httpx.AsyncClient, phone: str, question: str = "¿cuándo cierra la inscripción?"
) -> httpx.Response:
    return await client.post("/chat", json={"phone": phone, "question": question})


async def on_whatsapp(client: httpx.AsyncClient, payload: dict[str, Any]) -> None:
    content, headers = signed(payload)
    assert (await client.post("/webhooks/whatsapp", content=content, headers=headers)).status_code == 200


def breaker_state() -> float | None:
    """0 closed, 1 half-open, 2 open."""
    return REGISTRY.get_sample_value("bedel_llm_breaker_state")


class TestModelDownForAMinute:
    async def test_the_breaker_opens_students_are_offered_a_person_and_it_closes_again(
        self, client: httpx.AsyncClient, vendors: Vendors, breaker_clock: BreakerClock
    ) -> None:
        # The first failures reach the model; then the breaker answers without calling it.
        failed = [await ask(client, f"+3461234567{n}") for n in range(THRESHOLD)]
        assert vendors.model.call_count == THRESHOLD
        assert breaker_state() == 2
        breaker_clock.advance(RESET_S / 2)
        fast = await ask(client, "+34612345679")
        assert vendors.model.call_count == THRESHOLD
        for response in [*failed, fast]:
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "llm_unavailable"
            assert 1 <= int(response.headers["retry-after"]) <= RESET_S

        # Over WhatsApp: the polite message, with buttons to have a person take over.
        await on_whatsapp(client, text_message(WHATSAPP_ID, "¿cuándo cierra la inscripción?", "wamid.out1"))
        await eventually(lambda: vendors.graph.call_count == 1)
        thread = (await client.get("/threads", params={"phone": "+525512345678"})).json()["items"][0]
        offer = vendors.graph.calls[0].request
        assert sent_text(offer) == TEXTS.unavailable
        assert json.loads(offer.content)["interactive"]["footer"]["text"] == TEXTS.handoff_question
        assert sent_buttons(offer) == [f"handoff:yes:{thread['id']}", f"handoff:no:{thread['id']}"]
        # Over Twilio, which has no reply buttons: the offer in words.
        body, headers = twilio_signed(twilio_form(TWILIO_ID, "¿cuándo cierra la inscripción?", "SM" + "7" * 32))
        assert (await client.post("/webhooks/twilio", content=body, headers=headers)).status_code == 200
        await eventually(lambda: vendors.twilio.call_count == 1)
        sent = parse_qs(vendors.twilio.calls[0].request.content.decode())["Body"][0]
        assert sent == TEXTS.unavailable_offer.format(contact=CONTACT)
        assert CONTACT in sent
        # The student taps "Sí": a person takes over, without the model.
        await on_whatsapp(
            client, button_reply(WHATSAPP_ID, "wamid.out1-yes", f"handoff:yes:{thread['id']}", "Sí", "wamid.offer")
        )
        await eventually(lambda: vendors.graph.call_count == 2)
        assert "continuará esta conversación" in sent_text(vendors.graph.calls[1].request)
        handed = (await client.get("/threads", params={"phone": "+525512345678"})).json()["items"][0]
        assert handed["status"] == "handoff"
        assert vendors.model.call_count == THRESHOLD

        # A minute on, the breaker lets one call through; the model still fails, so it opens again.
        breaker_clock.advance(RESET_S + 1)
        assert (await ask(client, "+34612345679")).status_code == 503
        assert vendors.model.call_count == THRESHOLD + 1
        assert breaker_state() == 2

        # The model is back: the next call after the reset time closes the breaker, and answers flow again.
        vendors.down = False
        breaker_clock.advance(RESET_S + 1)
        recovered = await ask(client, "+34612345679")
        assert recovered.status_code == 200
        assert recovered.json()["answer"] == "La inscripción cierra el viernes."
        assert breaker_state() == 0
        again = [await ask(client, f"+3461234567{n}") for n in range(THRESHOLD)]
        assert [r.status_code for r in again] == [200] * THRESHOLD
        assert vendors.model.call_count == 2 * THRESHOLD + 2
