"""The privacy notice: sent once to each WhatsApp contact, with their first answer, and recorded."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select

from bedel.channels.models import ChannelContact
from bedel.config import Settings
from bedel.db import create_engine, create_sessionmaker
from bedel.texts.catalog import texts_for
from tests.channels.vendors import (
    CHANNEL_SETTINGS,
    GRAPH_MESSAGES_URL,
    TWILIO_MESSAGES_URL,
    graph_sent,
    sent_text,
    signed,
    text_message,
    twilio_form,
    twilio_sent,
    twilio_signed,
)
from tests.polling import eventually

WA_ID = "5215512345678"
PHONE = "+525512345678"
INSTITUTION = "Preparatoria Benito Juárez"
CONTACT = "control escolar"


async def post_whatsapp(client: httpx.AsyncClient, text: str, wamid: str) -> None:
    body, headers = signed(text_message(WA_ID, text, wamid))
    assert (await client.post("/webhooks/whatsapp", content=body, headers=headers)).status_code == 200


async def notified_at(database_url: str) -> Any:
    engine = create_engine(database_url)
    async with create_sessionmaker(engine)() as session:
        notified = await session.scalar(select(ChannelContact.privacy_notice_at).where(ChannelContact.phone == PHONE))
    await engine.dispose()
    return notified


@pytest.fixture
def notice_client(make_settings: Callable[..., Settings], make_client: Callable[..., Any]) -> Callable[..., Any]:
    """Opens a client of the app with the channels and the institution set; keywords change other settings."""

    def open_client(**overrides: Any) -> Any:
        values = {**CHANNEL_SETTINGS, "institution_name": INSTITUTION, "contact": CONTACT, "privacy_notice": None}
        return make_client(make_settings(**(values | overrides)))

    return open_client


@pytest.fixture
def graph() -> Any:
    with respx.mock(assert_all_called=False) as router:
        yield router.post(GRAPH_MESSAGES_URL).mock(return_value=graph_sent(WA_ID))


class TestStandardNotice:
    async def test_the_first_answer_is_followed_by_the_notice_once(
        self, notice_client: Callable[..., Any], graph: respx.Route, clean_database: str
    ) -> None:
        async with notice_client() as client:
            await post_whatsapp(client, "hola", "wamid.1")
            await eventually(lambda: graph.call_count == 2)
            await post_whatsapp(client, "¿cuándo hay clases?", "wamid.2")
            await eventually(lambda: graph.call_count == 3)

        sent = [sent_text(call.request) for call in graph.calls]
        notice = texts_for("es").privacy_notice.format(institution=INSTITUTION, contact=CONTACT)
        assert sent[1] == notice
        assert INSTITUTION in notice and "ARCO" in notice
        assert notice not in (sent[0], sent[2])
        assert await notified_at(clean_database) is not None

    async def test_a_redelivered_message_does_not_send_it_again(
        self, notice_client: Callable[..., Any], graph: respx.Route
    ) -> None:
        async with notice_client() as client:
            await post_whatsapp(client, "hola", "wamid.1")
            await eventually(lambda: graph.call_count == 2)
            await post_whatsapp(client, "hola", "wamid.1")
            await post_whatsapp(client, "gracias", "wamid.3")
            await eventually(lambda: graph.call_count == 3)

        assert sum("ARCO" in sent_text(call.request) for call in graph.calls) == 1

    async def test_twilio_whatsapp_contacts_get_it_too(self, notice_client: Callable[..., Any]) -> None:
        with respx.mock(assert_all_called=False) as router:
            rest = router.post(TWILIO_MESSAGES_URL).mock(return_value=twilio_sent(f"whatsapp:+{WA_ID}", "ok"))
            async with notice_client() as client:
                body, headers = twilio_signed(twilio_form(WA_ID, "hola", "SM" + "1" * 32))
                await client.post("/webhooks/twilio", content=body, headers=headers)
                await eventually(lambda: rest.call_count == 2)

        assert "ARCO" in rest.calls[1].request.content.decode()


class TestOwnNoticeOrNone:
    async def test_the_setting_gives_the_schools_own_text(
        self, notice_client: Callable[..., Any], graph: respx.Route
    ) -> None:
        own = "Aviso de privacidad integral: https://prepa.example.edu/privacidad"
        async with notice_client(privacy_notice=own) as client:
            await post_whatsapp(client, "hola", "wamid.1")
            await eventually(lambda: graph.call_count == 2)

        assert sent_text(graph.calls[1].request) == own

    async def test_off_sends_none_and_records_none(
        self, notice_client: Callable[..., Any], graph: respx.Route, clean_database: str
    ) -> None:
        async with notice_client(privacy_notice="off") as client:
            await post_whatsapp(client, "hola", "wamid.1")
            await eventually(lambda: graph.call_count == 1)
            await post_whatsapp(client, "gracias", "wamid.2")
            await eventually(lambda: graph.call_count == 2)

        assert not any("ARCO" in sent_text(call.request) for call in graph.calls)
        assert await notified_at(clean_database) is None
