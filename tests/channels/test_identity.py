"""Identity beyond the phone, end to end: username-only WhatsApp users verify once, then get their record."""

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select, update

from bedel.config import Settings
from bedel.db import create_engine, create_sessionmaker, utcnow
from bedel.identities.models import ChannelIdentity, IdentityKind
from bedel.texts.catalog import texts_for
from tests.channels.vendors import (
    CHANNEL_SETTINGS,
    GRAPH_MESSAGES_URL,
    TWILIO_MESSAGES_URL,
    graph_sent,
    graph_sent_to_user,
    sent_words,
    signed,
    text_message,
    twilio_form,
    twilio_sent,
    twilio_signed,
    username_message,
)
from tests.polling import eventually

ES = texts_for("es")
ASK_STUDENT_ID = ES.ask_student_id
INVITATION = ES.invitation
NOT_VERIFIED = ES.not_verified
UNREADABLE_DATE = ES.unreadable_date
BSUID = "MX.1502576394655843"
WA_ID = "5215512345678"
PHONE = "+525512345678"
STUDENTS = (
    "matricula,nombre,telefono,adeudo,fecha_nacimiento,curp\n"
    "A001,Lucía Pérez,+52 55 1234 5678,4500,2004-03-15,PEPL040315MDFRRC09\n"
    "A002,Mario Soto,+52 55 8765 4321,1200,2003-07-01,SOMM030701HDFTRR01\n"
)


def graph_answer(request: httpx.Request) -> httpx.Response:
    sent = json.loads(request.content)
    return graph_sent_to_user(sent["recipient"]) if "recipient" in sent else graph_sent(sent["to"])


@pytest.fixture
def graph() -> Any:
    with respx.mock(assert_all_called=False) as router:
        yield router.post(GRAPH_MESSAGES_URL).mock(side_effect=graph_answer)


@pytest.fixture
def make_wa_client(make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    return lambda **overrides: with_students(make_client(make_settings(**CHANNEL_SETTINGS, **overrides)), STUDENTS)


@asynccontextmanager
async def with_students(client: Any, students: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app's client (`make_client`'s), opened with `students` (a CSV) loaded."""
    async with client as opened:
        await opened.post("/students/import", files={"file": ("s.csv", students, "text/csv")})
        yield opened


@pytest.fixture
async def wa_client(make_wa_client: Any) -> Any:
    async with make_wa_client() as client:
        yield client


class Student:
    """A WhatsApp user who writes and waits for each reply, as over the phone."""

    def __init__(self, client: httpx.AsyncClient, graph: respx.Route, user_id: str = BSUID) -> None:
        self.client, self.graph, self.user_id = client, graph, user_id
        self.sent = 0

    async def write(self, body: str, *, wa_id: str | None = None, replies: int = 1) -> list[dict[str, Any]]:
        """Post `body` as Meta does and return the Graph API calls it caused."""
        self.sent += 1
        payload = username_message(self.user_id, body, f"wamid.{self.user_id}.{self.sent}", wa_id=wa_id)
        content, headers = signed(payload)
        assert (await self.client.post("/webhooks/whatsapp", content=content, headers=headers)).status_code == 200
        before = self.graph.call_count
        await eventually(lambda: self.graph.call_count >= before + replies)
        return [json.loads(call.request.content) for call in self.graph.calls[before:]]

    async def ask(self, body: str, **kwargs: Any) -> str:
        (reply,) = await self.write(body, **kwargs)
        return str(sent_words(reply))


async def thread_messages(client: httpx.AsyncClient, phone: str) -> list[tuple[str, str]]:
    threads = (await client.get("/threads", params={"phone": phone})).json()["items"]
    if not threads:
        return []
    items = (await client.get(f"/threads/{threads[0]['id']}/messages")).json()["items"]
    return [(item["role"], item["content"]) for item in items]


async def identities(database_url: str) -> dict[tuple[str, str], str]:
    engine = create_engine(database_url)
    async with create_sessionmaker(engine)() as session:
        rows = (await session.scalars(select(ChannelIdentity))).all()
    await engine.dispose()
    return {(row.kind, row.value): row.phone for row in rows}


class TestUsernameOnlyStudent:
    async def test_verifies_once_and_then_gets_their_balance(
        self, wa_client: httpx.AsyncClient, graph: respx.Route, clean_database: str
    ) -> None:
        lucia = Student(wa_client, graph)

        (asked,) = await lucia.write("¿cuánto debo?")
        assert asked["recipient"] == BSUID and "to" not in asked
        assert sent_words(asked) == ASK_STUDENT_ID
        assert "fecha de nacimiento" in await lucia.ask("A001")
        assert "Lucía Pérez" in await lucia.ask("15/03/2004")

        answer = await lucia.ask("¿cuánto debo?")

        assert "4,500" in answer
        # From now on the business-scoped id is the student's: same thread as her phone.
        assert (await identities(clean_database))[(IdentityKind.bsuid, BSUID)] == PHONE
        assert await thread_messages(wa_client, PHONE) == [("user", "¿cuánto debo?"), ("assistant", answer)]

    async def test_a_question_sent_right_after_the_date_is_answered_from_the_record(
        self, wa_client: httpx.AsyncClient, graph: respx.Route
    ) -> None:
        lucia = Student(wa_client, graph)
        await lucia.ask("A001")

        # Both accepted before the first is answered, so the second was queued as anonymous.
        for number, body in enumerate(["15/03/2004", "¿cuánto debo?"]):
            content, headers = signed(username_message(BSUID, body, f"wamid.quick.{number}"))
            await wa_client.post("/webhooks/whatsapp", content=content, headers=headers)
        await eventually(lambda: graph.call_count == 3)

        assert "4,500" in sent_words(json.loads(graph.calls.last.request.content))

    async def test_nothing_personal_is_said_before_verifying(
        self, wa_client: httpx.AsyncClient, graph: respx.Route
    ) -> None:
        lucia = Student(wa_client, graph)

        replies = [await lucia.ask(question) for question in ["¿cuánto debo?", "¿cuál es mi saldo?", "A001"]]
        replies.append(await lucia.ask("¿y mi promedio?"))

        assert not any("4,500" in reply or "Lucía" in reply for reply in replies)
        assert await thread_messages(wa_client, PHONE) == []

    async def test_a_general_question_is_answered_and_the_way_to_verify_told_once(
        self, wa_client: httpx.AsyncClient, graph: respx.Route
    ) -> None:
        lucia = Student(wa_client, graph)

        first = await lucia.write("hola", replies=2)
        second = await lucia.write("gracias")

        assert [sent_words(reply) for reply in first][1] == INVITATION
        assert all(reply["recipient"] == BSUID for reply in first + second)
        assert INVITATION not in [sent_words(reply) for reply in second]
        assert not any("Lucía" in sent_words(reply) for reply in first + second)

    async def test_an_unknown_student_id_and_a_wrong_fact_get_the_same_answer(
        self, wa_client: httpx.AsyncClient, graph: respx.Route, clean_database: str
    ) -> None:
        lucia = Student(wa_client, graph)
        await lucia.ask("A001")
        wrong_date = await lucia.ask("16/03/2004")
        await lucia.ask("Z999")
        unknown_id = await lucia.ask("15/03/2004")

        assert wrong_date == unknown_id == NOT_VERIFIED
        assert (await identities(clean_database))[(IdentityKind.bsuid, BSUID)] != PHONE

    async def test_a_date_it_cannot_read_is_asked_again_without_counting_a_try(
        self, make_wa_client: Any, graph: respx.Route
    ) -> None:
        async with make_wa_client(identity_verification_attempts=1) as client:
            lucia = Student(client, graph)
            await lucia.ask("A001")

            assert await lucia.ask("en marzo") == UNREADABLE_DATE
            assert "Lucía Pérez" in await lucia.ask("15 de marzo de 2004")

    async def test_the_fact_asked_is_the_one_the_settings_name(self, make_wa_client: Any, graph: respx.Route) -> None:
        async with make_wa_client(identity_verification_field="curp") as client:
            lucia = Student(client, graph)

            assert "curp" in await lucia.ask("A001")
            assert await lucia.ask("15/03/2004") == NOT_VERIFIED
            await lucia.ask("A001")
            assert "Lucía Pérez" in await lucia.ask("pepl040315mdfrrc09")
            assert "4,500" in await lucia.ask("¿cuánto debo?")

    async def test_the_id_and_the_date_may_come_in_one_message(
        self, wa_client: httpx.AsyncClient, graph: respx.Route
    ) -> None:
        lucia = Student(wa_client, graph)

        assert "Lucía Pérez" in await lucia.ask("A001 15/03/2004")
        assert "4,500" in await lucia.ask("¿cuánto debo?")

    async def test_a_second_student_id_corrects_the_first(
        self, wa_client: httpx.AsyncClient, graph: respx.Route
    ) -> None:
        lucia = Student(wa_client, graph)
        await lucia.ask("A002")

        assert "fecha de nacimiento" in await lucia.ask("perdón, es A001")
        assert "Lucía Pérez" in await lucia.ask("15/03/2004")

    async def test_a_classmates_id_is_not_guessable(
        self, make_wa_client: Any, graph: respx.Route, clean_database: str
    ) -> None:
        async with make_wa_client(identity_verification_attempts=2, identity_verification_cooldown_s=600) as client:
            intruder = Student(client, graph)
            for guess in ["01/01/2004", "02/01/2004"]:
                await intruder.ask("A001")
                last = await intruder.ask(guess)

            assert "10 minutos" in last
            # Locked out: even the right date proves nothing, and the record stays closed.
            assert "minutos" in await intruder.ask("A001")
            assert "minutos" in await intruder.ask("15/03/2004")
            assert "4,500" not in await intruder.ask("¿cuánto debo?")

            await _end_cool_down(clean_database)
            await intruder.ask("A001")
            assert "Lucía Pérez" in await intruder.ask("15/03/2004")

    async def test_each_further_lock_out_waits_twice_as_long(
        self, make_wa_client: Any, graph: respx.Route, clean_database: str
    ) -> None:
        async with make_wa_client(identity_verification_attempts=1, identity_verification_cooldown_s=600) as client:
            intruder = Student(client, graph)
            waits = []
            for _ in range(3):
                await intruder.ask("A001")
                waits.append(await intruder.ask("01/01/2004"))
                await _end_cool_down(clean_database)

            for wait, minutes in zip(waits, [10, 20, 40], strict=True):
                assert f"espera {minutes} minutos" in wait


class TestUsernamePayloads:
    async def test_a_message_naming_no_sender_is_acknowledged_and_ignored(
        self, wa_client: httpx.AsyncClient, graph: respx.Route, clean_database: str
    ) -> None:
        payload = username_message(BSUID, "hola", "wamid.nobody")
        del payload["entry"][0]["changes"][0]["value"]["messages"][0]["from_user_id"]
        content, headers = signed(payload)

        response = await wa_client.post("/webhooks/whatsapp", content=content, headers=headers)

        assert response.json() == {"accepted": 0}
        assert await identities(clean_database) == {}


class TestIdentitiesOfOneStudent:
    async def test_a_business_scoped_id_seen_with_a_phone_needs_no_verification(
        self, wa_client: httpx.AsyncClient, graph: respx.Route, clean_database: str
    ) -> None:
        lucia = Student(wa_client, graph)
        await lucia.ask("hola", wa_id=WA_ID)

        # Later Meta withholds her phone: the id it came with still says who she is.
        answer = await lucia.ask("¿cuánto debo?")

        assert "4,500" in answer
        assert [content for _, content in await thread_messages(wa_client, PHONE)][::2] == ["hola", "¿cuánto debo?"]
        assert await identities(clean_database) == {
            (IdentityKind.bsuid, BSUID): PHONE,
            (IdentityKind.wa_id, WA_ID): PHONE,
        }

    async def test_a_staff_reply_reaches_a_username_only_student_by_their_id(
        self, wa_client: httpx.AsyncClient, graph: respx.Route
    ) -> None:
        lucia = Student(wa_client, graph)
        await lucia.ask("A001 15/03/2004")
        await lucia.ask("quiero hablar con una persona")
        (thread,) = (await wa_client.get("/threads", params={"phone": PHONE})).json()["items"]

        await wa_client.post(f"/threads/{thread['id']}/messages", json={"text": "Hola Lucía, soy Ana."})
        await eventually(lambda: graph.call_count == 3)

        sent = json.loads(graph.calls.last.request.content)
        assert (sent.get("to"), sent["recipient"], sent_words(sent)) == (None, BSUID, "Hola Lucía, soy Ana.")

    async def test_every_channel_maps_to_the_same_thread(
        self, wa_client: httpx.AsyncClient, graph: respx.Route, clean_database: str
    ) -> None:
        lucia = Student(wa_client, graph)
        await lucia.ask("A001")
        await lucia.ask("15/03/2004")
        content, headers = signed(text_message(WA_ID, "¿cuál es mi saldo?", "wamid.phone"))
        await wa_client.post("/webhooks/whatsapp", content=content, headers=headers)
        with respx.mock(assert_all_called=False) as twilio:
            twilio.post(TWILIO_MESSAGES_URL).mock(return_value=twilio_sent(f"whatsapp:+{WA_ID}", "¿y mi adeudo?"))
            body, headers = twilio_signed(twilio_form(WA_ID, "¿y mi adeudo?", "SM" + "c" * 32))
            await wa_client.post("/webhooks/twilio", content=body, headers=headers)
            await eventually(lambda: twilio.calls.call_count == 1)
        await eventually(lambda: graph.call_count == 3)

        questions = [content for role, content in await thread_messages(wa_client, PHONE) if role == "user"]

        assert questions == ["¿cuál es mi saldo?", "¿y mi adeudo?"]
        assert await identities(clean_database) == {
            (IdentityKind.bsuid, BSUID): PHONE,
            (IdentityKind.wa_id, WA_ID): PHONE,
            (IdentityKind.twilio, f"whatsapp:+{WA_ID}"): PHONE,
        }


async def _end_cool_down(database_url: str) -> None:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(update(ChannelIdentity).values(locked_until=utcnow() - timedelta(seconds=1)))
    await engine.dispose()
