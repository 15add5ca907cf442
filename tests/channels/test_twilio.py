"""Twilio's WhatsApp webhook, end to end: signed form posts in, REST API sends out (respx)."""

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from bedel.config import Settings
from tests.channels.vendors import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CHANNEL_SETTINGS,
    TWILIO_FROM,
    TWILIO_MESSAGES_URL,
    twilio_error,
    twilio_form,
    twilio_sent,
    twilio_signed,
)
from tests.llm_fakes import LLM_BASE_URL, completion
from tests.polling import eventually

WA_ID = "5215512345678"
SENDER = f"whatsapp:+{WA_ID}"


async def post(client: httpx.AsyncClient, form: dict[str, str], **sign: Any) -> httpx.Response:
    body, headers = twilio_signed(form, **sign)
    return await client.post("/webhooks/twilio", content=body, headers=headers)


def sent_forms(route: respx.Route) -> list[dict[str, str]]:
    return [{k: v[0] for k, v in parse_qs(call.request.content.decode()).items()} for call in route.calls]


@pytest.fixture
async def twilio_client(make_client: Callable[[Settings], Any], channel_settings: Settings) -> Any:
    async with make_client(channel_settings) as client:
        yield client


@pytest.fixture
def rest() -> Any:
    with respx.mock(assert_all_called=False) as router:
        yield router.post(TWILIO_MESSAGES_URL).mock(return_value=twilio_sent(SENDER, "ok"))


class TestIncomingMessage:
    async def test_the_answer_is_sent_through_the_rest_api(
        self, twilio_client: httpx.AsyncClient, rest: respx.Route
    ) -> None:
        response = await post(twilio_client, twilio_form(WA_ID, "hola", "SM" + "1" * 32))

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/xml")
        assert "<Response></Response>" in response.text
        await eventually(lambda: rest.call_count == 1)
        request = rest.calls.last.request
        assert request.headers["authorization"] == httpx.BasicAuth(ACCOUNT_SID, AUTH_TOKEN)._auth_header
        sent = sent_forms(rest)[0]
        assert (sent["To"], sent["From"]) == (SENDER, TWILIO_FROM)
        threads = (await twilio_client.get("/threads", params={"phone": "+525512345678"})).json()["items"]
        messages = (await twilio_client.get(f"/threads/{threads[0]['id']}/messages")).json()["items"]
        assert [m["content"] for m in messages] == ["hola", sent["Body"]]

    async def test_without_reply_buttons_a_request_for_a_person_hands_over_at_once(
        self, twilio_client: httpx.AsyncClient, rest: respx.Route
    ) -> None:
        await post(twilio_client, twilio_form(WA_ID, "quiero hablar con un asesor", "SM" + "4" * 32))
        await eventually(lambda: rest.call_count == 1)

        thread = (await twilio_client.get("/threads", params={"phone": "+525512345678"})).json()["items"][0]
        assert thread["status"] == "handoff"
        assert "continuará esta conversación" in sent_forms(rest)[0]["Body"]
        assert "¿Te sirvió" not in sent_forms(rest)[0]["Body"]

    async def test_a_long_answer_is_split_at_twilios_limit(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]
    ) -> None:
        answer = " ".join(f"Esta es la oración número {n} de una respuesta muy larga." for n in range(60))
        settings = make_settings(
            **CHANNEL_SETTINGS,
            llm_provider="openai_compatible",
            llm_base_url=LLM_BASE_URL,
            llm_api_key="sk-test",
            llm_max_retries=0,
        )
        with respx.mock(assert_all_called=False) as router:
            rest = router.post(TWILIO_MESSAGES_URL).mock(return_value=twilio_sent(SENDER, "ok"))
            router.post(f"{LLM_BASE_URL}/chat/completions").mock(return_value=completion(answer))
            async with make_client(settings) as client:
                await post(client, twilio_form(WA_ID, "cuéntame todo", "SM" + "2" * 32))
                await eventually(lambda: rest.call_count == 3)

        parts = [form["Body"] for form in sent_forms(rest)]
        assert all(len(part) <= 1600 for part in parts)
        assert all(part.endswith(".") for part in parts)
        assert " ".join(parts) == answer

    async def test_a_video_gets_a_reply_saying_only_text_is_read(
        self, twilio_client: httpx.AsyncClient, rest: respx.Route
    ) -> None:
        await post(twilio_client, twilio_form(WA_ID, "", "SM" + "3" * 32, num_media=1, media_type="video/mp4"))

        await eventually(lambda: rest.call_count == 1)
        assert "texto" in sent_forms(rest)[0]["Body"]

    async def test_redeliveries_are_answered_once(self, twilio_client: httpx.AsyncClient, rest: respx.Route) -> None:
        form = twilio_form(WA_ID, "hola", "SM" + "4" * 32)

        responses = await asyncio.gather(*(post(twilio_client, form) for _ in range(8)))
        await eventually(lambda: rest.call_count == 1)
        await post(twilio_client, twilio_form(WA_ID, "gracias", "SM" + "5" * 32))
        await eventually(lambda: rest.call_count == 2)

        assert {r.status_code for r in responses} == {200}
        assert rest.call_count == 2

    async def test_a_refused_send_is_recorded_on_the_message(self, twilio_client: httpx.AsyncClient) -> None:
        with respx.mock(assert_all_called=False) as router:
            router.post(TWILIO_MESSAGES_URL).mock(
                return_value=twilio_error(400, 63016, "Failed to send freeform message outside the window")
            )
            await post(twilio_client, twilio_form(WA_ID, "hola", "SM" + "6" * 32))

            async def failed() -> bool:
                threads = (await twilio_client.get("/threads")).json()["items"]
                if not threads:
                    return False
                items = (await twilio_client.get(f"/threads/{threads[0]['id']}/messages")).json()["items"]
                return bool(items[-1]["delivery_status"] == "failed" and items[-1]["delivery_error_code"] == "63016")

            await eventually(failed)


class TestSignature:
    async def test_a_bad_signature_is_401_and_stores_nothing(
        self, twilio_client: httpx.AsyncClient, rest: respx.Route
    ) -> None:
        form = twilio_form(WA_ID, "hola", "SM" + "7" * 32)
        body, headers = twilio_signed(form)

        forged = await twilio_client.post("/webhooks/twilio", content=body.replace("hola", "adios"), headers=headers)
        missing = await twilio_client.post(
            "/webhooks/twilio", content=body, headers={"content-type": headers["content-type"]}
        )

        assert forged.status_code == missing.status_code == 401
        assert (await twilio_client.get("/threads")).json()["items"] == []

    async def test_the_signature_covers_the_public_url_not_the_internal_one(
        self, twilio_client: httpx.AsyncClient
    ) -> None:
        form = twilio_form(WA_ID, "hola", "SM" + "8" * 32)

        response = await post(twilio_client, form, url="http://bedel.test/webhooks/twilio")

        assert response.status_code == 401

    async def test_a_channel_without_secrets_is_off(self, client: httpx.AsyncClient) -> None:
        response = await post(client, twilio_form(WA_ID, "hola", "SM" + "9" * 32))

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "channel_disabled"
