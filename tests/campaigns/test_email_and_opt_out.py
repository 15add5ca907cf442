"""Email through a real local SMTP server (aiosmtpd), and opting out by replying BAJA on WhatsApp."""

from typing import Any

import httpx
import pytest
import respx

from bedel.channels.email.client import EmailClient
from bedel.channels.ports import SendFailed
from bedel.config import SMTPSecurity
from bedel.state import AppState
from tests.campaigns.provider import GraphTemplates
from tests.campaigns.samples import reminder
from tests.channels.vendors import signed, text_message
from tests.mailbox import Mailbox, text_of
from tests.polling import eventually
from tests.ports import free_port

App = tuple[httpx.AsyncClient, AppState]


async def test_the_email_client_delivers_and_classifies_refusals(smtp_server: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp_server
    client = EmailClient(host="127.0.0.1", port=port, sender="avisos@example.edu", security=SMTPSecurity.none)
    message_id = await client.send_email("ana@alumnos.example.edu", "Inscripciones", "Hola Ana, ya puedes inscribirte.")
    assert [m["Message-ID"] for m in mailbox.messages] == [message_id]
    received = mailbox.messages[0]
    assert (received["To"], received["Subject"]) == ("ana@alumnos.example.edu", "Inscripciones")
    assert text_of(received).strip() == "Hola Ana, ya puedes inscribirte."

    with pytest.raises(SendFailed) as refused:
        await client.send_email("nadie@refused.example", "x", "y")
    assert not refused.value.temporary
    closed = EmailClient(host="127.0.0.1", port=free_port(), sender="avisos@example.edu", security=SMTPSecurity.none)
    with pytest.raises(SendFailed) as unreachable:
        await closed.send_email("ana@alumnos.example.edu", "x", "y")
    assert unreachable.value.temporary


@pytest.fixture
def campaign_settings(make_settings: Any, smtp_server: tuple[Mailbox, int]) -> Any:
    from tests.channels.vendors import CHANNEL_SETTINGS

    return make_settings(
        **CHANNEL_SETTINGS | {"campaign_rate_whatsapp": 0, "campaign_rate_email": 0},
        smtp_host="127.0.0.1",
        smtp_port=smtp_server[1],
        smtp_from="Universidad <avisos@example.edu>",
        smtp_security="none",
    )


async def test_an_email_campaign_writes_each_message_from_the_record(
    app: App, smtp_server: tuple[Mailbox, int]
) -> None:
    client, _ = app
    mailbox, _ = smtp_server
    body = {
        "name": "Adeudos",
        "channel": "email",
        "message": {"subject": "Tu adeudo, {{ name }}", "text": "Debes ${{ adeudo }}. Paga antes del día 15."},
        "audience": {"filter": "adeudo > 1000"},
    }
    campaign = (await client.post("/campaigns", json=body)).json()
    # Beto owes too, but has no email on record.
    assert campaign["progress"]["pending"] == 1 and campaign["progress"]["skipped_by_reason"] == {"no_email": 1}
    await client.post(f"/campaigns/{campaign['id']}/start")

    async def completed() -> bool:
        return bool((await client.get(f"/campaigns/{campaign['id']}")).json()["status"] == "completed")

    await eventually(completed)
    assert [(m["To"], m["Subject"]) for m in mailbox.messages] == [("ana@alumnos.example.edu", "Tu adeudo, Ana Ruiz")]
    assert "Debes $4500.00." in text_of(mailbox.messages[0])


async def test_a_student_who_replies_baja_gets_no_more_campaigns(app: App) -> None:
    client, _ = app
    with respx.mock(assert_all_called=False) as router:
        graph = GraphTemplates(router)
        payload, headers = signed(text_message("5215511112222", "  Baja ", "wamid.optout1"))
        assert (await client.post("/webhooks/whatsapp", content=payload, headers=headers)).status_code == 200
        # The confirmation goes back over WhatsApp, and the bot does not answer "baja" as a question.
        await eventually(lambda: graph.sent)
        assert "ya no recibirás avisos" in graph.sent[0]["text"]["body"]

        preview = (await client.post("/campaigns", json=reminder(dry_run=True))).json()
        assert preview["skipped"] == {"invalid_phone": 1, "opted_out": 1}

        payload, headers = signed(text_message("5215511112222", "ALTA", "wamid.optin1"))
        await client.post("/webhooks/whatsapp", content=payload, headers=headers)
        await eventually(lambda: len(graph.sent) == 2)
        preview = (await client.post("/campaigns", json=reminder(dry_run=True))).json()
        assert preview["skipped"] == {"invalid_phone": 1}
