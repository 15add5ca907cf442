"""Window-aware sends and delivery receipts: what leaves after 24 hours, and how each message fared."""

import email
import itertools
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import Message as EmailMessage
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select, update

from bedel.channels.models import ChannelContact
from bedel.channels.ports import SendFailed
from bedel.channels.whatsapp.client import WhatsAppClient
from bedel.config import ConfigError, Settings, load_settings
from bedel.db import as_utc, create_engine, create_sessionmaker, utcnow
from bedel.jobs.models import Job, JobStatus
from tests.channels.vendors import (
    ACCESS_TOKEN,
    CHANNEL_SETTINGS,
    GRAPH_BASE,
    GRAPH_MESSAGES_URL,
    PHONE_NUMBER_ID,
    PUBLIC_URL,
    TWILIO_FROM,
    TWILIO_MESSAGES_URL,
    graph_error,
    graph_sent,
    graph_status_error,
    signed,
    status_update,
    text_message,
    twilio_form,
    twilio_sent,
    twilio_signed,
    twilio_status,
)
from tests.mailbox import text_of
from tests.polling import eventually
from tests.ports import free_port

WA_ID = "5215512345678"
PHONE = "+525512345678"
SMS_FROM = "+15017122661"
TEMPLATE = {
    "reengage_fallback": "template",
    "whatsapp_reengage_template": "seguimiento",
    "twilio_reengage_content_sid": "HX" + "b" * 32,
}


async def post(client: httpx.AsyncClient, payload: dict[str, Any]) -> httpx.Response:
    body, headers = signed(payload)
    return await client.post("/webhooks/whatsapp", content=body, headers=headers)


async def post_status(
    client: httpx.AsyncClient, form: dict[str, str], url: str = f"{PUBLIC_URL}/webhooks/twilio/status"
) -> httpx.Response:
    body, headers = twilio_signed(form, url=url)
    return await client.post("/webhooks/twilio/status", content=body, headers=headers)


async def thread_messages(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    threads = (await client.get("/threads", params={"phone": PHONE})).json()["items"]
    return list((await client.get(f"/threads/{threads[0]['id']}/messages")).json()["items"]) if threads else []


async def last_message(client: httpx.AsyncClient) -> dict[str, Any]:
    return (await thread_messages(client))[-1]


async def close_window(database_url: str, days: int = 3) -> None:
    """The student last wrote `days` days ago."""
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(update(ChannelContact).values(last_inbound_at=utcnow() - timedelta(days=days)))
    await engine.dispose()


def graph_ids() -> Iterator[str]:
    return (f"wamid.out{n}" for n in itertools.count(1))


def form_of(request: httpx.Request) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(request.content.decode()).items()}


@pytest.fixture
def graph() -> Any:
    ids = graph_ids()
    with respx.mock(assert_all_called=False) as router:
        yield router.post(GRAPH_MESSAGES_URL).mock(side_effect=lambda _: graph_sent(WA_ID, next(ids)))


@pytest.fixture
def mailbox() -> Iterator[tuple[list[EmailMessage], int]]:
    """A real SMTP server on a free port, keeping what it accepts."""
    received: list[EmailMessage] = []

    class Handler:
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            assert isinstance(envelope.content, bytes)
            received.append(email.message_from_bytes(envelope.content))
            return "250 Message accepted for delivery"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    yield received, port
    controller.stop()


@pytest.fixture
def make_wa_client(make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> Any:
    def make(**overrides: Any) -> Any:
        return make_client(make_settings(**{**CHANNEL_SETTINGS, **overrides}))

    return make


async def a_conversation(client: httpx.AsyncClient, graph: respx.Route) -> str:
    """The student asked and got an answer; returns the thread id."""
    await post(client, text_message(WA_ID, "hola", "wamid.in1"))
    await eventually(lambda: graph.call_count == 1)
    return str((await client.get("/threads", params={"phone": PHONE})).json()["items"][0]["id"])


class TestWindowAwareSends:
    async def test_a_staff_reply_three_days_later_goes_out_as_a_template_and_its_receipt_shows_on_the_thread(
        self, make_wa_client: Any, graph: respx.Route, clean_database: str
    ) -> None:
        async with make_wa_client(**TEMPLATE) as client:
            thread_id = await a_conversation(client, graph)
            await close_window(clean_database)

            reply = await client.post(f"/threads/{thread_id}/messages", json={"text": "Hola,\nya quedó tu trámite."})
            await eventually(lambda: graph.call_count == 2)
            await eventually(lambda: _status_is(client, "sent"))
            sent = json.loads(graph.calls.last.request.content)
            await post(client, status_update(WA_ID, "wamid.out2", "delivered"))
            delivered = await last_message(client)
            await post(client, status_update(WA_ID, "wamid.out2", "read"))
            read = await last_message(client)

        assert reply.status_code == 201
        assert sent["type"] == "template"
        assert sent["template"] == {
            "name": "seguimiento",
            "language": {"code": "es_MX"},
            # A template parameter may not hold line breaks.
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Hola, ya quedó tu trámite."}]}],
        }
        assert (delivered["delivery_path"], delivered["delivery_status"]) == ("template", "delivered")
        assert read["delivery_status"] == "read"
        assert read["content"] == "Hola,\nya quedó tu trámite."

    async def test_within_the_window_a_staff_reply_is_free_form(self, make_wa_client: Any, graph: respx.Route) -> None:
        async with make_wa_client(**TEMPLATE) as client:
            thread_id = await a_conversation(client, graph)
            await client.post(f"/threads/{thread_id}/messages", json={"text": "¿Algo más?"})
            await eventually(lambda: _status_is(client, "sent"))

            assert json.loads(graph.calls.last.request.content)["type"] == "text"
            assert (await last_message(client))["delivery_path"] == "free_form"

    async def test_the_handoff_notice_goes_out_as_a_template_once_the_window_closed(
        self, make_wa_client: Any, graph: respx.Route, clean_database: str
    ) -> None:
        async with make_wa_client(**TEMPLATE) as client:
            thread_id = await a_conversation(client, graph)
            await close_window(clean_database)

            await client.patch(f"/threads/{thread_id}", json={"status": "handoff"})
            await eventually(lambda: graph.call_count == 2)

            sent = json.loads(graph.calls.last.request.content)
            assert sent["type"] == "template"
            assert "continuará esta conversación" in sent["template"]["components"][0]["parameters"][0]["text"]

    async def test_with_the_sms_fallback_a_late_reply_is_a_text_message_to_the_phone(
        self, make_wa_client: Any, graph: respx.Route, clean_database: str
    ) -> None:
        async with make_wa_client(reengage_fallback="sms", twilio_sms_from=SMS_FROM) as client:
            thread_id = await a_conversation(client, graph)
            await close_window(clean_database)
            with respx.mock(assert_all_called=False) as router:
                twilio = router.post(TWILIO_MESSAGES_URL).mock(return_value=twilio_sent(PHONE, "x", "SM" + "5" * 32))
                await client.post(f"/threads/{thread_id}/messages", json={"text": "Tu constancia está lista."})
                await eventually(lambda: _status_is(client, "sent"))

            form = form_of(twilio.calls.last.request)
            assert (form["From"], form["To"], form["Body"]) == (SMS_FROM, PHONE, "Tu constancia está lista.")
            assert form["StatusCallback"] == f"{PUBLIC_URL}/webhooks/twilio/status"
            assert (await last_message(client))["delivery_path"] == "sms"
            assert graph.call_count == 1

    async def test_with_the_email_fallback_a_late_reply_goes_to_the_address_on_the_students_record(
        self, make_wa_client: Any, graph: respx.Route, clean_database: str, mailbox: tuple[list[EmailMessage], int]
    ) -> None:
        received, port = mailbox
        smtp = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_from": "avisos@example.edu", "smtp_security": "none"}
        async with make_wa_client(reengage_fallback="email", institution_name="Universidad Norte", **smtp) as client:
            students = "matricula,nombre,telefono,correo\nA001,Lucía Pérez,+52 55 1234 5678,lucia@alumnos.example.edu\n"
            await client.post("/students/import", files={"file": ("s.csv", students, "text/csv")})
            thread_id = await a_conversation(client, graph)
            await close_window(clean_database)
            await client.post(f"/threads/{thread_id}/messages", json={"text": "Tu constancia está lista."})
            await eventually(lambda: _status_is(client, "sent"))
            reply = await last_message(client)

        assert [(m["To"], m["Subject"]) for m in received] == [
            ("lucia@alumnos.example.edu", "Mensaje de Universidad Norte")
        ]
        assert text_of(received[0]).strip() == "Tu constancia está lista."
        assert reply["delivery_path"] == "email"
        assert graph.call_count == 1

    async def test_with_the_email_fallback_a_student_without_an_address_is_a_visible_failure(
        self, make_wa_client: Any, graph: respx.Route, clean_database: str, mailbox: tuple[list[EmailMessage], int]
    ) -> None:
        received, port = mailbox
        smtp = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_from": "avisos@example.edu", "smtp_security": "none"}
        async with make_wa_client(reengage_fallback="email", **smtp) as client:
            thread_id = await a_conversation(client, graph)
            await close_window(clean_database)
            await client.post(f"/threads/{thread_id}/messages", json={"text": "Tu constancia está lista."})
            await eventually(lambda: _status_is(client, "failed"))
            reply = await last_message(client)

        assert (reply["delivery_path"], reply["delivery_error_code"]) == ("email", "no_email")
        assert "correo" in reply["delivery_error"]
        assert received == []

    async def test_over_twilio_the_template_is_the_content_sid_with_the_text_as_its_variable(
        self, make_wa_client: Any, clean_database: str
    ) -> None:
        async with make_wa_client(**TEMPLATE) as client:
            with respx.mock(assert_all_called=False) as router:
                twilio = router.post(TWILIO_MESSAGES_URL).mock(return_value=twilio_sent(f"whatsapp:+{WA_ID}", "x"))
                body, headers = twilio_signed(twilio_form(WA_ID, "hola", "SM" + "1" * 32))
                await client.post("/webhooks/twilio", content=body, headers=headers)
                await eventually(lambda: twilio.call_count == 1)
                await close_window(clean_database)
                thread_id = (await client.get("/threads")).json()["items"][0]["id"]
                await client.post(f"/threads/{thread_id}/messages", json={"text": "Ya puedes recoger tu credencial."})
                await eventually(lambda: twilio.call_count == 2)

            form = form_of(twilio.calls.last.request)
            assert (form["From"], form["To"]) == (TWILIO_FROM, f"whatsapp:+{WA_ID}")
            assert form["ContentSid"] == "HX" + "b" * 32
            assert json.loads(form["ContentVariables"]) == {"1": "Ya puedes recoger tu credencial."}
            assert "Body" not in form

    async def test_without_a_fallback_a_reply_whose_window_closed_fails_instead_of_being_sent(
        self, make_wa_client: Any, graph: respx.Route
    ) -> None:
        three_days_ago = int((utcnow() - timedelta(days=3)).timestamp())
        async with make_wa_client() as client:
            await post(client, text_message(WA_ID, "hola", "wamid.old", timestamp=three_days_ago))
            await eventually(lambda: _status_is(client, "failed"))
            answer = await last_message(client)

        assert graph.call_count == 0
        assert answer["delivery_error_code"] == "window_closed"
        assert "24 horas" in answer["delivery_error"]

    @pytest.mark.parametrize(
        ("fallback", "missing"),
        [
            ("template", "BEDEL_WHATSAPP_REENGAGE_TEMPLATE"),
            ("sms", "BEDEL_TWILIO_SMS_FROM"),
            ("email", "BEDEL_SMTP_HOST"),
        ],
    )
    def test_a_fallback_without_what_it_sends_with_does_not_start(
        self, monkeypatch: pytest.MonkeyPatch, fallback: str, missing: str
    ) -> None:
        for name, value in CHANNEL_SETTINGS.items():
            monkeypatch.setenv(f"BEDEL_{name.upper()}", str(value))
        monkeypatch.setenv("BEDEL_REENGAGE_FALLBACK", fallback)

        with pytest.raises(ConfigError, match=missing):
            load_settings()


class TestMetaReceipts:
    async def test_receipts_out_of_order_and_repeated_only_move_forward(
        self, make_wa_client: Any, graph: respx.Route
    ) -> None:
        async with make_wa_client() as client:
            await a_conversation(client, graph)
            await eventually(lambda: _status_is(client, "sent"))
            seen = []
            for status in ("read", "delivered", "sent", "read", "failed"):
                failure = [graph_status_error(131026, "Message undeliverable", "x")] if status == "failed" else None
                response = await post(client, status_update(WA_ID, "wamid.out1", status, errors=failure))
                assert response.status_code == 200
                seen.append((await last_message(client))["delivery_status"])

        assert seen == ["read"] * 5

    async def test_a_failure_shows_the_code_and_a_spanish_explanation_and_a_later_delivery_wins(
        self, make_wa_client: Any, graph: respx.Route
    ) -> None:
        details = "Message failed to send because more than 24 hours have passed since the customer last replied."
        async with make_wa_client() as client:
            await a_conversation(client, graph)
            await eventually(lambda: _status_is(client, "sent"))
            error = graph_status_error(131047, "Re-engagement message", details)
            await post(client, status_update(WA_ID, "wamid.out1", "failed", errors=[error]))
            failed = await last_message(client)
            await post(client, status_update(WA_ID, "wamid.out1", "delivered"))
            delivered = await last_message(client)

        assert (failed["delivery_status"], failed["delivery_error_code"]) == ("failed", "131047")
        assert "24 horas" in failed["delivery_error"]
        assert (delivered["delivery_status"], delivered["delivery_error_code"], delivered["delivery_error"]) == (
            "delivered",
            None,
            None,
        )

    async def test_an_unknown_failure_code_keeps_the_vendors_words(
        self, make_wa_client: Any, graph: respx.Route
    ) -> None:
        async with make_wa_client() as client:
            await a_conversation(client, graph)
            await eventually(lambda: _status_is(client, "sent"))
            error = graph_status_error(131049, "Message not delivered to maintain healthy ecosystem engagement", "x")
            await post(client, status_update(WA_ID, "wamid.out1", "failed", errors=[error]))
            failed = await last_message(client)

        assert failed["delivery_error_code"] == "131049"
        assert failed["delivery_error"] == "El proveedor no entregó el mensaje: x"

    async def test_a_receipt_for_a_message_bedel_did_not_send_changes_nothing(
        self, make_wa_client: Any, graph: respx.Route
    ) -> None:
        async with make_wa_client() as client:
            await a_conversation(client, graph)
            await eventually(lambda: _status_is(client, "sent"))
            response = await post(client, status_update(WA_ID, "wamid.somebody-else", "read"))

            assert response.status_code == 200
            assert (await last_message(client))["delivery_status"] == "sent"


class TestTwilioStatusCallback:
    async def test_statuses_move_the_message_forward_and_a_failure_is_explained(self, make_wa_client: Any) -> None:
        sid = "SM" + "7" * 32
        async with make_wa_client() as client:
            with respx.mock(assert_all_called=False) as router:
                router.post(TWILIO_MESSAGES_URL).mock(return_value=twilio_sent(f"whatsapp:+{WA_ID}", "x", sid))
                body, headers = twilio_signed(twilio_form(WA_ID, "hola", "SM" + "2" * 32))
                await client.post("/webhooks/twilio", content=body, headers=headers)
                await eventually(lambda: _status_is(client, "sent"))
            delivered = await post_status(client, twilio_status(sid, "delivered"))
            after_delivered = (await last_message(client))["delivery_status"]
            late_sent = await post_status(client, twilio_status(sid, "sent"))
            after_late_sent = (await last_message(client))["delivery_status"]

        assert (delivered.status_code, late_sent.status_code) == (204, 204)
        assert (after_delivered, after_late_sent) == ("delivered", "delivered")

    async def test_an_undelivered_message_shows_twilios_code(self, make_wa_client: Any) -> None:
        sid = "SM" + "8" * 32
        async with make_wa_client() as client:
            with respx.mock(assert_all_called=False) as router:
                router.post(TWILIO_MESSAGES_URL).mock(return_value=twilio_sent(f"whatsapp:+{WA_ID}", "x", sid))
                body, headers = twilio_signed(twilio_form(WA_ID, "hola", "SM" + "3" * 32))
                await client.post("/webhooks/twilio", content=body, headers=headers)
                await eventually(lambda: _status_is(client, "sent"))
            await post_status(client, twilio_status(sid, "undelivered", "63016"))
            failed = await last_message(client)

        assert (failed["delivery_status"], failed["delivery_error_code"]) == ("failed", "63016")
        assert "plantilla" in failed["delivery_error"]

    async def test_a_bad_signature_is_401_and_changes_nothing(self, make_wa_client: Any) -> None:
        async with make_wa_client() as client:
            response = await post_status(client, twilio_status("SM" + "9" * 32, "failed", "21610"), url=PUBLIC_URL)

        assert response.status_code == 401

    async def test_a_callback_without_a_status_is_422(self, make_wa_client: Any) -> None:
        form = twilio_status("SM" + "9" * 32, "delivered")
        del form["MessageStatus"]
        async with make_wa_client() as client:
            response = await post_status(client, form)

        assert response.status_code == 422


class TestThrottling:
    async def test_too_many_messages_to_one_student_retries_later_instead_of_failing(
        self, make_wa_client: Any, clean_database: str
    ) -> None:
        async with make_wa_client() as client:
            with respx.mock(assert_all_called=False) as router:
                router.post(GRAPH_MESSAGES_URL).mock(
                    return_value=graph_error(
                        400, 131056, "(#131056) (Business Account, Consumer Account) pair rate limit hit"
                    )
                )
                await post(client, text_message(WA_ID, "hola", "wamid.burst"))
                await eventually(lambda: _deliver_job_retried(clean_database))
            answer = await last_message(client)
            job = (await _deliver_jobs(clean_database))[0]

        assert answer["delivery_status"] == "pending"
        assert job.status == JobStatus.queued
        assert "131056" in (job.last_error or "")
        # The runner's first backoff here is 10 ms; this student's queue waits the pair-limit pause instead.
        assert as_utc(job.run_after) - utcnow() > timedelta(seconds=20)


async def _status_is(client: httpx.AsyncClient, status: str) -> bool:
    messages = await thread_messages(client)
    return bool(messages) and messages[-1]["delivery_status"] == status


async def _deliver_jobs(database_url: str) -> list[Job]:
    engine = create_engine(database_url)
    async with create_sessionmaker(engine)() as session:
        rows = (await session.scalars(select(Job).where(Job.kind == "channels.deliver"))).all()
    await engine.dispose()
    return list(rows)


async def _deliver_job_retried(database_url: str) -> bool:
    jobs = await _deliver_jobs(database_url)
    return bool(jobs) and jobs[0].status == JobStatus.queued and jobs[0].attempts == 1


class TestThrottledReceipts:
    async def test_a_message_failed_for_sending_too_fast_is_sent_again_after_a_pause(
        self, make_wa_client: Any, graph: respx.Route, clean_database: str
    ) -> None:
        error = graph_status_error(131056, "(Business Account, Consumer Account) pair rate limit hit", "x")
        async with make_wa_client() as client:
            await a_conversation(client, graph)
            await eventually(lambda: _status_is(client, "sent"))
            await post(client, status_update(WA_ID, "wamid.out1", "failed", errors=[error]))
            answer = await last_message(client)
            resend = (await _deliver_jobs(clean_database))[-1]

        assert (answer["delivery_status"], answer["delivery_error_code"]) == ("pending", "131056")
        assert (resend.status, resend.payload["text"], resend.payload["message_id"]) == (
            JobStatus.queued,
            answer["content"],
            answer["id"],
        )
        assert as_utc(resend.run_after) - utcnow() > timedelta(seconds=20)

    async def test_a_throttled_failure_after_delivery_sends_nothing_again(
        self, make_wa_client: Any, graph: respx.Route, clean_database: str
    ) -> None:
        error = graph_status_error(130429, "Rate limit hit", "x")
        async with make_wa_client() as client:
            await a_conversation(client, graph)
            await eventually(lambda: _status_is(client, "sent"))
            await post(client, status_update(WA_ID, "wamid.out1", "delivered"))
            await post(client, status_update(WA_ID, "wamid.out1", "failed", errors=[error]))

            assert (await last_message(client))["delivery_status"] == "delivered"
            assert len(await _deliver_jobs(clean_database)) == 1


class TestThroughputLimit:
    async def test_the_throughput_limit_pauses_every_send_from_the_number(self) -> None:
        now = [100.0]
        client = WhatsAppClient(
            api_base=GRAPH_BASE, phone_number_id=PHONE_NUMBER_ID, access_token=ACCESS_TOKEN, clock=lambda: now[0]
        )
        with respx.mock() as router:
            route = router.post(GRAPH_MESSAGES_URL).mock(
                side_effect=[
                    graph_error(400, 130429, "(#130429) Rate limit hit"),
                    graph_sent("5215598765432", "wamid.after-pause"),
                ]
            )
            with pytest.raises(SendFailed) as limited:
                await client.send_text(WA_ID, "a")
            now[0] += 4
            # Another student, same business number: held back without a call that would fail too.
            with pytest.raises(SendFailed) as held:
                await client.send_text("5215598765432", "b")
            now[0] += 7
            sent = await client.send_text("5215598765432", "b")
        await client.aclose()

        assert (limited.value.temporary, limited.value.code, limited.value.retry_after_s) == (True, "130429", 10.0)
        assert (held.value.code, held.value.retry_after_s) == ("130429", 6.0)
        assert (route.call_count, sent) == (2, "wamid.after-pause")
