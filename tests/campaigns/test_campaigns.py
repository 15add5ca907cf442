"""Campaigns through the API, sent by the real runner to a Graph API mocked at the HTTP layer."""

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bedel.campaigns.models import Campaign, CampaignRecipient
from bedel.campaigns.runner import MAX_BATCH
from bedel.chat.models import Message, Thread
from bedel.state import AppState
from tests.campaigns.provider import GraphTemplates
from tests.campaigns.samples import reminder
from tests.channels.vendors import graph_error

App = tuple[httpx.AsyncClient, AppState]


async def _count(state: AppState, model: Any) -> int:
    async with state.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def _run_until_idle(state: AppState) -> None:
    while await state.campaigns.run_once():
        pass


async def test_a_dry_run_counts_skips_and_renders_samples_without_storing_anything(app: App) -> None:
    client, state = app
    response = await client.post("/campaigns", json=reminder(dry_run=True))
    assert response.status_code == 200, response.text
    preview = response.json()
    # Ana, Beto and Dario owe; Dario's phone cannot receive messages.
    assert preview["recipients"] == 2
    assert preview["skipped"] == {"invalid_phone": 1}
    assert preview["samples"][0] == {
        "to": "+525511112222",
        "text": "[Plantilla recordatorio_pago] Ana Ruiz | 4500.00",
        "subject": None,
        "template": "recordatorio_pago",
        "parameters": ["Ana Ruiz", "4500.00"],
    }
    assert await _count(state, Campaign) == 0 and await _count(state, CampaignRecipient) == 0


async def test_an_email_campaign_skips_students_without_email(app: App) -> None:
    client, _ = app
    body = {
        "name": "Inscripciones",
        "channel": "email",
        "message": {"subject": "Inscripciones, {{ name }}", "text": "Hola {{ name }}, ya puedes inscribirte."},
        "audience": {"filter": "carrera == 'derecho'"},
        "dry_run": True,
    }
    preview = (await client.post("/campaigns", json=body)).json()
    assert preview["recipients"] == 2
    assert preview["skipped"] == {"no_email": 1}
    assert preview["samples"][0]["subject"] == "Inscripciones, Ana Ruiz"


async def test_bad_campaigns_are_refused_and_store_nothing(app: App) -> None:
    client, state = app
    cases = [
        reminder(audience={"filter": "meses_vencidos >= "}),
        reminder(audience={"filter": "__import__('os').system('x')"}),
        reminder(audience={"filter": "colegiatura > 1"}),
        reminder(audience={"filter": "x == 1", "recipients": ["+525511112222"]}),
        reminder(message={"text": "hola"}),
        reminder(message={"template": {"name": "t", "parameters": ["{{ saldo_inexistente }}"]}}),
        reminder(message={"template": {"name": "t", "parameters": ["{{ name "]}}),
        reminder(channel="sms", message={"text": "hola"}),
    ]
    for body in cases:
        response = await client.post("/campaigns", json=body)
        assert response.status_code in (409, 422), (body, response.text)
        assert "error" in response.json()
    assert await _count(state, Campaign) == 0


async def test_a_campaign_sends_each_recipient_its_own_template_once(app: App, graph: GraphTemplates) -> None:
    client, state = app
    created = await client.post("/campaigns", json=reminder())
    assert created.status_code == 201, created.text
    campaign = created.json()
    assert campaign["status"] == "draft"
    assert campaign["progress"] | {"skipped_by_reason": None} == {
        "total": 3,
        "pending": 2,
        "sending": 0,
        "sent": 0,
        "failed": 0,
        "skipped": 1,
        "skipped_by_reason": None,
        "delivered": 0,
        "read": 0,
    }
    # A draft sends nothing.
    assert not await state.campaigns.run_once()

    started = await client.post(f"/campaigns/{campaign['id']}/start")
    assert started.json()["status"] == "running"
    await _run_until_idle(state)
    await _run_until_idle(state)

    shown = (await client.get(f"/campaigns/{campaign['id']}")).json()
    assert shown["status"] == "completed"
    assert shown["progress"]["sent"] == 2 and shown["progress"]["pending"] == 0
    assert sorted(body["to"] for body in graph.sent) == ["525511112222", "525533334444"]
    template = next(body for body in graph.sent if body["to"] == "525533334444")["template"]
    assert template == {
        "name": "recordatorio_pago",
        "language": {"code": "es_MX"},
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Beto Díaz"}, {"type": "text", "text": "1200.50"}]}
        ],
    }
    sent = (await client.get(f"/campaigns/{campaign['id']}/recipients", params={"status": "sent"})).json()
    assert {item["vendor_message_id"] for item in sent["items"]} == {"wamid.HBgL00000001", "wamid.HBgL00000002"}
    # The student's thread shows what was sent, for the assistant to read when they reply.
    async with state.sessionmaker() as session:
        content = await session.scalar(select(Message.content).join(Thread).where(Thread.phone == "+525533334444"))
    assert content == "[Plantilla recordatorio_pago] Beto Díaz | 1200.50"


async def test_permanent_failures_are_listed_and_transient_ones_retried(app: App, graph: GraphTemplates) -> None:
    client, state = app
    graph.failures["525511112222"] = graph_error(400, 131026, "Message undeliverable")
    graph.failures["525533334444"] = graph_error(503, 131000, "Something went wrong")
    campaign = (await client.post("/campaigns", json=reminder())).json()
    await client.post(f"/campaigns/{campaign['id']}/start")
    await state.campaigns.run_once()

    failed = (await client.get(f"/campaigns/{campaign['id']}/recipients", params={"status": "failed"})).json()
    assert [item["address"] for item in failed["items"]] == ["+525511112222"]
    assert "131026" in failed["items"][0]["error"]
    pending = (await client.get(f"/campaigns/{campaign['id']}/recipients", params={"status": "pending"})).json()
    assert [(item["address"], item["attempts"]) for item in pending["items"]] == [("+525533334444", 1)]

    del graph.failures["525533334444"]
    await _run_until_idle(state)
    while (await client.get(f"/campaigns/{campaign['id']}")).json()["status"] == "running":
        await _run_until_idle(state)
    shown = (await client.get(f"/campaigns/{campaign['id']}")).json()
    assert (shown["status"], shown["progress"]["sent"], shown["progress"]["failed"]) == ("completed", 1, 1)
    assert [body["to"] for body in graph.sent] == ["525533334444"]


@pytest.mark.parametrize("retry_base_s", [60.0])
async def test_a_provider_outage_holds_the_campaign_without_spending_attempts(app: App, graph: GraphTemplates) -> None:
    client, state = app
    listed = ["+52 55 1000 000" + str(n) for n in range(4)]
    for phone in listed:
        graph.failures["52551000000" + phone[-1]] = graph_error(500, 2, "Service temporarily unavailable")
    body = reminder(audience={"recipients": listed}, message={"template": {"name": "aviso"}})
    campaign = (await client.post("/campaigns", json=body)).json()
    await client.post(f"/campaigns/{campaign['id']}/start")
    assert await state.campaigns.run_once()

    shown = (await client.get(f"/campaigns/{campaign['id']}")).json()
    assert shown["held_until"] is not None and "Service temporarily unavailable" in shown["hold_reason"]
    assert shown["progress"]["pending"] == 4 and shown["progress"]["failed"] == 0
    pending = (await client.get(f"/campaigns/{campaign['id']}/recipients")).json()["items"]
    assert {item["attempts"] for item in pending} == {0}
    # Held: nothing more is tried until the hold ends.
    assert not await state.campaigns.run_once()


async def test_pause_resume_and_cancel(app: App, graph: GraphTemplates) -> None:
    client, state = app
    campaign = (await client.post("/campaigns", json=reminder())).json()
    url = f"/campaigns/{campaign['id']}"
    assert (await client.post(f"{url}/pause")).status_code == 409
    await client.post(f"{url}/start")
    assert (await client.post(f"{url}/pause")).json()["status"] == "paused"
    assert not await state.campaigns.run_once()
    assert graph.sent == []
    assert (await client.post(f"{url}/resume")).json()["status"] == "running"
    cancelled = (await client.post(f"{url}/cancel")).json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["progress"]["skipped_by_reason"] == {"invalid_phone": 1, "cancelled": 2}
    assert not await state.campaigns.run_once()
    assert graph.sent == []
    assert (await client.post(f"{url}/start")).status_code == 409
    assert (await client.get("/campaigns/00000000-0000-0000-0000-000000000000")).status_code == 404


async def test_campaigns_running_at_once_take_turns(app: App, graph: GraphTemplates) -> None:
    client, state = app
    listed = [f"+52 55 2000 {n:04d}" for n in range(2 * MAX_BATCH)]
    listed_body = reminder(audience={"recipients": listed}, message={"template": {"name": "aviso"}})
    first = (await client.post("/campaigns", json=listed_body)).json()
    second = (await client.post("/campaigns", json=reminder(name="Inscripciones"))).json()
    for campaign in (first, second):
        await client.post(f"/campaigns/{campaign['id']}/start")
    # The first campaign has two batches' worth; the second, started later, is not left waiting behind both.
    # (Each batch is one lease of at most MAX_BATCH, on PostgreSQL too, where SKIP LOCKED once let a lease
    # take every row.)
    assert await state.campaigns.run_once() and await state.campaigns.run_once()
    progress = [(await client.get(f"/campaigns/{c['id']}")).json()["progress"]["sent"] for c in (first, second)]
    assert progress == [MAX_BATCH, 2]
