"""SMS, and WhatsApp templates through Twilio's Content API, with Twilio mocked at the HTTP layer."""

import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from sqlalchemy import select

from bedel.campaigns.models import CampaignRecipient
from bedel.config import Settings
from bedel.db import as_utc, utcnow
from bedel.state import AppState
from tests.campaigns.samples import STUDENTS_CSV
from tests.channels.vendors import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_URL,
    TWILIO_BASE,
    TWILIO_FROM,
    TWILIO_MESSAGES_URL,
    twilio_error,
    twilio_sent,
    twilio_signed,
    twilio_status,
)

App = tuple[httpx.AsyncClient, AppState]
SMS_FROM = "+15005550006"


@pytest.fixture
async def app(make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]) -> AsyncIterator[App]:
    # Twilio only: WhatsApp templates go through its Content API.
    settings = make_settings(
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_from=TWILIO_FROM,
        twilio_sms_from=SMS_FROM,
        twilio_api_base=TWILIO_BASE,
        public_url=PUBLIC_URL,
        campaign_rate_sms=0,
        campaign_rate_whatsapp=0,
    )
    harness = make_client(settings)
    async with harness as client:
        await client.post("/students/import", files={"file": ("alumnos.csv", STUDENTS_CSV.encode(), "text/csv")})
        yield client, harness.app.state.bedel


def forms(route: respx.Route) -> list[dict[str, str]]:
    return [{k: v[0] for k, v in parse_qs(call.request.content.decode()).items()} for call in route.calls]


async def start(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    created = await client.post("/campaigns", json=body)
    assert created.status_code == 201, created.text
    campaign_id = str(created.json()["id"])
    await client.post(f"/campaigns/{campaign_id}/start")
    return campaign_id


SMS = {
    "name": "Pagos",
    "channel": "sms",
    "message": {"text": "{{ name }}: tu adeudo es de ${{ adeudo }}."},
    "audience": {"recipients": ["+52 55 1111 2222", "+52 55 3333 4444"]},
}


async def test_sms_goes_from_the_sms_number_with_each_students_text(app: App) -> None:
    client, state = app
    sids = iter(f"SM{n:032d}" for n in range(1, 100))
    with respx.mock:
        route = respx.post(TWILIO_MESSAGES_URL).mock(side_effect=lambda r: twilio_sent("+52", "x", sid=next(sids)))
        campaign_id = await start(client, SMS)
        while await state.campaigns.run_once():
            pass
    callback = f"{PUBLIC_URL}/webhooks/twilio/status"
    sent = sorted(forms(route), key=lambda form: form["To"])
    assert sent == [
        {
            "To": "+525511112222",
            "From": SMS_FROM,
            "Body": "Ana Ruiz: tu adeudo es de $4500.00.",
            "StatusCallback": callback,
        },
        {
            "To": "+525533334444",
            "From": SMS_FROM,
            "Body": "Beto Díaz: tu adeudo es de $1200.50.",
            "StatusCallback": callback,
        },
    ]
    assert (await client.get(f"/campaigns/{campaign_id}")).json()["progress"]["sent"] == 2

    # Twilio's status callbacks reach the recipients: delivered, and 21610 (the student replied STOP to Twilio).
    recipients = (await client.get(f"/campaigns/{campaign_id}/recipients")).json()["items"]
    sid_of = {item["address"]: item["vendor_message_id"] for item in recipients}
    for sid, status, code in (
        (sid_of["+525511112222"], "delivered", None),
        (sid_of["+525533334444"], "undelivered", "21610"),
    ):
        body, headers = twilio_signed(twilio_status(sid, status, code), url=callback)
        assert (await client.post("/webhooks/twilio/status", content=body, headers=headers)).status_code == 204
    after = {
        item["address"]: item for item in (await client.get(f"/campaigns/{campaign_id}/recipients")).json()["items"]
    }
    assert after["+525511112222"]["delivery_status"] == "delivered"
    stopped = after["+525533334444"]
    assert (stopped["status"], stopped["delivery_error_code"]) == ("failed", "21610")
    assert "STOP" in stopped["error"]


async def test_twilio_errors_are_retried_after_retry_after_or_failed(app: App) -> None:
    client, state = app
    answers = {
        "+525511112222": httpx.Response(
            429, headers={"Retry-After": "120"}, json={"code": 20429, "message": "Too Many"}
        ),
        "+525533334444": twilio_error(400, 21211, "The 'To' number +525533334444 is not a valid phone number."),
    }
    with respx.mock:
        respx.post(TWILIO_MESSAGES_URL).mock(side_effect=lambda r: answers[parse_qs(r.content.decode())["To"][0]])
        campaign_id = await start(client, SMS)
        await state.campaigns.run_once()
    async with state.sessionmaker() as session:
        rows = {r.address: r for r in await session.scalars(select(CampaignRecipient))}
    retried, invalid = rows["+525511112222"], rows["+525533334444"]
    assert retried.status == "pending" and "429" in (retried.error or "")
    assert timedelta(seconds=115) < as_utc(retried.next_attempt_at) - utcnow() <= timedelta(seconds=120)
    assert invalid.status == "failed" and "21211" in (invalid.error or "")
    shown = (await client.get(f"/campaigns/{campaign_id}")).json()
    assert (shown["status"], shown["progress"]["pending"], shown["progress"]["failed"]) == ("running", 1, 1)


async def test_whatsapp_templates_go_through_twilios_content_api(app: App) -> None:
    client, state = app
    body = {
        "name": "Inscripciones",
        "channel": "whatsapp_template",
        "message": {"template": {"name": "HX" + "b" * 32, "parameters": ["{{ name }}", "{{ carrera }}"]}},
        "audience": {"filter": "matricula == 'A001'"},
    }
    with respx.mock:
        route = respx.post(TWILIO_MESSAGES_URL).mock(side_effect=lambda r: twilio_sent("whatsapp:+52", ""))
        await start(client, body)
        await state.campaigns.run_once()
    [form] = forms(route)
    assert (form["To"], form["From"], form["ContentSid"]) == ("whatsapp:+525511112222", TWILIO_FROM, "HX" + "b" * 32)
    assert json.loads(form["ContentVariables"]) == {"1": "Ana Ruiz", "2": "Derecho"}
