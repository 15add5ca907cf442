"""Paging parameters past what the database holds are refused with a 422 naming the parameter,
on every backend; at the bound, the query runs."""

import uuid

import httpx
import pytest

from bedel.paging import MAX_INT32, MAX_INT64, MAX_OFFSET

HUGE = 2**70


@pytest.fixture
async def thread_id(client: httpx.AsyncClient) -> str:
    response = await client.post("/chat", json={"phone": "+5215512345678", "question": "Hola"})
    assert response.status_code == 200
    return str(response.json()["thread_id"])


def refused_parameter(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    return str(response.json()["error"]["field"])


@pytest.mark.parametrize("path", ["/threads", "/campaigns"])
async def test_a_huge_offset_is_refused_and_the_bound_is_served(client: httpx.AsyncClient, path: str) -> None:
    for too_far in (MAX_OFFSET + 1, 2**63, HUGE):
        assert "offset" in refused_parameter(await client.get(path, params={"offset": too_far}))
    assert (await client.get(path, params={"offset": MAX_OFFSET})).status_code == 200


async def test_a_message_cursor_past_a_sequence_number_is_refused(client: httpx.AsyncClient, thread_id: str) -> None:
    path = f"/threads/{thread_id}/messages"
    for too_far in (MAX_INT32 + 1, HUGE):
        assert "after" in refused_parameter(await client.get(path, params={"after": too_far}))
    served = await client.get(path, params={"after": MAX_INT32})
    assert served.status_code == 200
    assert served.json()["items"] == []


async def test_a_recipient_cursor_past_a_ledger_id_is_refused(client: httpx.AsyncClient) -> None:
    path = f"/campaigns/{uuid.uuid4()}/recipients"
    assert "after" in refused_parameter(await client.get(path, params={"after": MAX_INT64 + 1}))
    # At the bound the request reaches the database: the campaign does not exist.
    assert (await client.get(path, params={"after": MAX_INT64})).status_code == 404
