"""Nothing logged gives away a secret or a student: a whole day's flow (a chat, both webhooks, an
identity verified with an emailed code, a campaign, a staff member reading the thread) runs with
every secret set and logging at DEBUG, as `bedel serve` configures it, and every line written
(the process's stderr and stdout, and every standard-library log record) is scanned for each
secret, full phone number, email address, matrícula and the code."""

import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import respx
import structlog

from bedel.config import Settings
from bedel.db import create_engine, create_sessionmaker, session_scope
from bedel.keys import service as keys
from bedel.keys.models import KeyRole
from bedel.ops.logging import configure_logging
from tests.channels.test_identity import graph_answer
from tests.channels.vendors import (
    ACCESS_TOKEN,
    APP_SECRET,
    AUTH_TOKEN,
    CHANNEL_SETTINGS,
    GRAPH_MESSAGES_URL,
    TWILIO_MESSAGES_URL,
    VERIFY_TOKEN,
    signed,
    text_message,
    twilio_form,
    twilio_sent,
    twilio_signed,
    username_message,
)
from tests.llm_fakes import LLM_BASE_URL, completion
from tests.mailbox import Credentials, Mailbox, running_smtp_server, text_of
from tests.polling import eventually

CLIENT_KEY = "client-key-5f0c8e1d2b3a49d7"
STAFF_KEY = "staff-key-9a8b7c6d5e4f3a2b"
LLM_KEY = "sk-proj-llm-key-0123456789abcdef"
TRANSCRIPTION_KEY = "sk-proj-transcription-key-fedcba9876543210"
SMTP_USER, SMTP_PASSWORD = "bedel-smtp", "smtp-password-7d6c5b4a"

# Three students: Lucía writes over WhatsApp under a username and proves who she is with an
# emailed code; Mario asks through /chat and over Twilio; Beto writes from his WhatsApp number.
STUDENTS = (
    "matricula,nombre,telefono,adeudo,correo\n"
    "A01234567,Lucía Pérez,+52 55 1234 5678,4500,lucia.perez@alumnos.example.edu\n"
    "A07654321,Mario Soto,+52 55 8765 4321,1200,mario.soto@alumnos.example.edu\n"
    "A03334444,Beto Díaz,+52 55 3333 4444,0,beto.diaz@alumnos.example.edu\n"
)
# Every full phone contains its ten national digits.
PHONES = ("5512345678", "5587654321", "5533334444")
EMAILS = ("lucia.perez@alumnos.example.edu", "mario.soto@alumnos.example.edu", "beto.diaz@alumnos.example.edu")
MATRICULAS = ("A01234567", "A07654321", "A03334444")
BSUID = "MX.1502576394655843"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with running_smtp_server(Credentials(SMTP_USER, SMTP_PASSWORD)) as server:
        yield server


@pytest.fixture
def settings_with_every_secret(make_settings: Callable[..., Settings], smtp: tuple[Mailbox, int]) -> Settings:
    return make_settings(
        **CHANNEL_SETTINGS,
        api_keys=CLIENT_KEY,
        staff_api_keys=STAFF_KEY,
        llm_provider="openai_compatible",
        llm_base_url=LLM_BASE_URL,
        llm_api_key=LLM_KEY,
        transcription_model="whisper-1",
        transcription_api_key=TRANSCRIPTION_KEY,
        identity_verification_field="email_code",
        smtp_host="127.0.0.1",
        smtp_port=smtp[1],
        smtp_username=SMTP_USER,
        smtp_password=SMTP_PASSWORD,
        smtp_from="Universidad <avisos@example.edu>",
        smtp_security="none",
        campaign_rate_email=0,
    )


@pytest.fixture
def logged_at_debug(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Logging as `bedel serve` sets it up, at DEBUG, with every standard-library record kept."""
    configure_logging("DEBUG")
    caplog.set_level(logging.DEBUG)
    yield caplog
    structlog.reset_defaults()


async def database_key(database_url: str) -> str:
    engine = create_engine(database_url)
    try:
        async for session in session_scope(create_sessionmaker(engine)):
            _, secret = await keys.create_key(session, "oficina", KeyRole.staff)
        return secret
    finally:
        await engine.dispose()


def graph_sends(router: respx.MockRouter) -> list[dict[str, Any]]:
    return [json.loads(call.request.content) for call in router.routes["graph"].calls]


async def whatsapp(client: httpx.AsyncClient, payload: dict[str, Any]) -> None:
    body, headers = signed(payload)
    assert (await client.post("/webhooks/whatsapp", content=body, headers=headers)).status_code == 200


async def run_the_day(client: httpx.AsyncClient, router: respx.MockRouter, mailbox: Mailbox, office_key: str) -> str:
    """Everything a school's day does; returns the code Lucía was emailed."""
    staff = {"Authorization": f"Bearer {STAFF_KEY}"}
    office = {"Authorization": f"Bearer {office_key}"}
    imported = await client.post("/students/import", files={"file": ("s.csv", STUDENTS, "text/csv")}, headers=office)
    assert imported.status_code == 200, imported.text

    chat = {"phone": "+52 1 55 8765 4321", "question": "¿Cuánto debo?"}
    assert (await client.post("/chat", json=chat, headers={"Authorization": f"Bearer {CLIENT_KEY}"})).status_code == 200

    challenge = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    assert (await client.get("/webhooks/whatsapp", params=challenge)).text == "1158201444"
    await whatsapp(client, text_message("5215533334444", "Hola, ¿cuándo son las inscripciones?", "wamid.beto.1"))
    await eventually(lambda: len(graph_sends(router)) == 1)

    form, headers = twilio_signed(twilio_form("5215587654321", "Hola desde Twilio", "SM" + "7" * 32))
    assert (await client.post("/webhooks/twilio", content=form, headers=headers)).status_code == 200
    await eventually(lambda: router.routes["twilio"].call_count == 1)

    await whatsapp(client, username_message(BSUID, "¿cuánto debo?", "wamid.lucia.1"))
    await eventually(lambda: len(graph_sends(router)) == 2)
    await whatsapp(client, username_message(BSUID, MATRICULAS[0], "wamid.lucia.2"))
    await eventually(lambda: len(mailbox.messages) == 1)
    (code,) = re.findall(r"\b\d{6}\b", text_of(mailbox.messages[0]))
    await eventually(lambda: len(graph_sends(router)) == 3)
    await whatsapp(client, username_message(BSUID, code, "wamid.lucia.3"))
    await eventually(lambda: len(graph_sends(router)) == 4)

    campaign = {
        "name": "Aviso de adeudo",
        "channel": "email",
        "message": {"subject": "Tu adeudo", "text": "Hola {{ name }}, tu adeudo es de {{ adeudo }}."},
        "audience": {"filter": "adeudo >= 1"},
    }
    created = await client.post("/campaigns", json=campaign, headers=office)
    assert created.status_code == 201, created.text
    started = await client.post(f"/campaigns/{created.json()['id']}/start", headers=office)
    assert started.status_code == 200, started.text
    await eventually(lambda: len(mailbox.messages) == 3)

    async def lucias_threads() -> Any:
        return (await client.get("/threads", params={"phone": PHONES[0]}, headers=staff)).json()["items"]

    # Her only thread under her phone holds the campaign's email, written into it when the batch is
    # settled: after the email has reached the mailbox.
    await eventually(lucias_threads)
    (thread,) = await lucias_threads()
    assert (await client.get(f"/threads/{thread['id']}/messages", headers=staff)).status_code == 200
    assert len((await client.get("/audit", headers=office)).json()["items"]) >= 3
    return str(code)


class TestNothingLoggedGivesAnythingAway:
    async def test_a_whole_day_logs_no_secret_phone_email_matricula_or_code(
        self,
        make_client: Callable[..., Any],
        settings_with_every_secret: Settings,
        smtp: tuple[Mailbox, int],
        clean_database: str,
        logged_at_debug: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str],
    ) -> None:
        office_key = await database_key(clean_database)
        with respx.mock(assert_all_called=False) as router:
            router.post(GRAPH_MESSAGES_URL, name="graph").mock(side_effect=graph_answer)
            router.post(TWILIO_MESSAGES_URL, name="twilio").mock(return_value=twilio_sent("whatsapp:+1", "ok"))
            router.post(f"{LLM_BASE_URL}/chat/completions").mock(return_value=completion("Con gusto te ayudo."))
            async with make_client(settings_with_every_secret) as client:
                code = await run_the_day(client, router, smtp[0], office_key)

        captured = capfd.readouterr()
        # Not Bedel: the test's own HTTP client (httpx logs each request to bedel.test) and its SMTP server.
        records = [
            record.getMessage()
            for record in logged_at_debug.records
            if "http://bedel.test/" not in record.getMessage() and not record.name.startswith("mail.log")
        ]
        logged = "\n".join([captured.err, captured.out, *records])
        # The scan reads the real lines: Lucía's verification is logged, her phone masked.
        assert '"event": "identity_verified"' in logged and "+52******5678" in logged
        secrets = [CLIENT_KEY, STAFF_KEY, office_key, LLM_KEY, TRANSCRIPTION_KEY, SMTP_PASSWORD]
        secrets += [VERIFY_TOKEN, APP_SECRET, ACCESS_TOKEN, AUTH_TOKEN]
        found = [value for value in [*secrets, *PHONES, *EMAILS, *MATRICULAS] if value in logged]
        assert found == [], "\n".join(line for line in logged.splitlines() if any(value in line for value in found))
        assert re.search(rf"\b{code}\b", logged) is None
