"""The ARCO routes: who may call them, and what an unknown or malformed phone gets (nothing changes)."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bedel.config import Settings

STAFF = {"Authorization": "Bearer staff-key"}
CLIENT = {"Authorization": "Bearer client-key"}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(api_keys="client-key", staff_api_keys="staff-key")


async def a_student_who_asked(client: httpx.AsyncClient) -> None:
    await client.put("/students/5512345678", json={"name": "Ana Ruiz", "external_id": "A1"}, headers=STAFF)
    chat = await client.post("/chat", json={"phone": "5512345678", "question": "Hola"}, headers=CLIENT)
    assert chat.status_code == 200, chat.text


class TestExport:
    async def test_the_export_lists_the_record_and_the_conversation_without_secrets(
        self, client: httpx.AsyncClient
    ) -> None:
        await a_student_who_asked(client)

        response = await client.get("/students/+52 1 55 1234 5678/export", headers=STAFF)

        assert response.status_code == 200
        exported = response.json()
        assert exported["phone"] == "+525512345678"
        holdings = exported["holdings"]
        assert [row["name"] for row in holdings["student"]] == ["Ana Ruiz"]
        assert holdings["messages"][0]["content"] == "Hola"
        assert "lock_token" not in holdings["threads"][0]

    async def test_an_unknown_phone_is_a_404_and_a_malformed_one_a_422(self, client: httpx.AsyncClient) -> None:
        unknown = await client.get("/students/5599999999/export", headers=STAFF)
        malformed = await client.get("/students/abc/export", headers=STAFF)

        assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")
        assert (malformed.status_code, malformed.json()["error"]["field"]) == (422, "phone")


class TestErase:
    async def test_without_erase_only_the_record_goes_and_no_erasure_is_recorded(
        self, client: httpx.AsyncClient
    ) -> None:
        await a_student_who_asked(client)

        deleted = await client.delete("/students/5512345678", headers=STAFF)

        assert deleted.status_code == 204
        holdings = (await client.get("/students/5512345678/export", headers=STAFF)).json()["holdings"]
        assert holdings["student"] == [] and len(holdings["messages"]) == 2
        assert (await client.get("/erasures", headers=STAFF)).json() == []

    async def test_the_receipt_names_who_asked_and_what_went_never_the_student(self, client: httpx.AsyncClient) -> None:
        await a_student_who_asked(client)

        erased = await client.delete("/students/5512345678", params={"erase": "true"}, headers=STAFF)

        assert erased.status_code == 200
        receipt = erased.json()
        # The record's creation was audited: that entry is about her too.
        assert receipt["removed"] == {"audit": 1, "messages": 2, "threads": 1, "student": 1, "token_usage": 1}
        assert receipt["requested_by"].startswith("key:")
        assert (await client.get("/erasures", headers=STAFF)).json() == [receipt]
        assert "5512345678" not in erased.text and "Ana" not in erased.text

    async def test_erasing_an_unknown_phone_is_a_404_and_records_nothing(self, client: httpx.AsyncClient) -> None:
        erased = await client.delete("/students/5599999999", params={"erase": "true"}, headers=STAFF)

        assert erased.status_code == 404
        assert (await client.get("/erasures", headers=STAFF)).json() == []


class TestWhoMayCall:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/students/5512345678/export"),
            ("DELETE", "/students/5512345678?erase=true"),
            ("GET", "/erasures"),
        ],
    )
    async def test_a_client_key_is_refused_and_nothing_changes(
        self, client: httpx.AsyncClient, method: str, path: str
    ) -> None:
        await a_student_who_asked(client)

        refused = await client.request(method, path, headers=CLIENT)

        assert refused.status_code == 403
        exported: dict[str, Any] = (await client.get("/students/5512345678/export", headers=STAFF)).json()
        assert len(exported["holdings"]["student"]) == 1
