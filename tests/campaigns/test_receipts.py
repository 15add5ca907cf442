"""Meta's status webhooks for campaign messages: shown on each recipient, moving forward only."""

import httpx

from bedel.state import AppState
from tests.campaigns.provider import GraphTemplates
from tests.campaigns.samples import reminder
from tests.channels.vendors import graph_status_error, signed, status_update

App = tuple[httpx.AsyncClient, AppState]


async def _receipt(client: httpx.AsyncClient, payload: dict[str, object]) -> None:
    body, headers = signed(payload)
    assert (await client.post("/webhooks/whatsapp", content=body, headers=headers)).status_code == 200


async def _recipients(client: httpx.AsyncClient, campaign_id: str) -> dict[str, dict[str, object]]:
    items = (await client.get(f"/campaigns/{campaign_id}/recipients")).json()["items"]
    return {str(item["address"]): item for item in items}


async def test_receipts_show_on_recipients_and_a_throttled_one_is_sent_again(app: App, graph: GraphTemplates) -> None:
    client, state = app
    campaign_id = (await client.post("/campaigns", json=reminder())).json()["id"]
    await client.post(f"/campaigns/{campaign_id}/start")
    while await state.campaigns.run_once():
        pass
    sent = await _recipients(client, campaign_id)
    ana, beto = str(sent["+525511112222"]["vendor_message_id"]), str(sent["+525533334444"]["vendor_message_id"])
    assert {item["delivery_status"] for item in sent.values() if item["status"] == "sent"} == {"sent"}

    await _receipt(client, status_update("525511112222", ana, "read"))
    # Late and repeated: a "delivered" after "read" changes nothing.
    await _receipt(client, status_update("525511112222", ana, "delivered"))
    undeliverable = graph_status_error(
        131026, "Message undeliverable", "Receiver is incapable of receiving this message"
    )
    await _receipt(client, status_update("525533334444", beto, "failed", errors=[undeliverable]))

    after = await _recipients(client, campaign_id)
    assert (after["+525511112222"]["status"], after["+525511112222"]["delivery_status"]) == ("sent", "read")
    failed = after["+525533334444"]
    assert (failed["status"], failed["delivery_status"], failed["delivery_error_code"]) == (
        "failed",
        "failed",
        "131026",
    )
    assert "WhatsApp no pudo entregar el mensaje" in str(failed["error"])
    listed = (await client.get(f"/campaigns/{campaign_id}/recipients", params={"status": "failed"})).json()["items"]
    assert [item["address"] for item in listed] == ["+525533334444"]
    progress = (await client.get(f"/campaigns/{campaign_id}")).json()["progress"]
    # A read message was delivered too.
    assert (progress["sent"], progress["failed"], progress["delivered"], progress["read"]) == (1, 1, 1, 1)


async def test_a_throttled_campaign_message_goes_back_to_the_queue(app: App, graph: GraphTemplates) -> None:
    client, state = app
    campaign_id = (await client.post("/campaigns", json=reminder())).json()["id"]
    await client.post(f"/campaigns/{campaign_id}/start")
    while await state.campaigns.run_once():
        pass
    await state.campaigns.run_once()
    assert (await client.get(f"/campaigns/{campaign_id}")).json()["status"] == "completed"
    wamid = str((await _recipients(client, campaign_id))["+525511112222"]["vendor_message_id"])

    too_many = graph_status_error(131056, "Pair rate limit hit", "Too many messages sent to this user")
    await _receipt(client, status_update("525511112222", wamid, "failed", errors=[too_many]))

    shown = (await client.get(f"/campaigns/{campaign_id}")).json()
    assert (shown["status"], shown["progress"]["pending"], shown["progress"]["failed"]) == ("running", 1, 0)
    again = (await _recipients(client, campaign_id))["+525511112222"]
    assert (again["status"], again["vendor_message_id"], again["delivery_error_code"]) == ("pending", None, "131056")
    # Not before the pause that code asks for (30 s).
    assert not await state.campaigns.run_once()
    assert len(graph.sent) == 2
