"""The audit log: staff reads of a student's data and every change are recorded with who, what,
when and from where; admins read it (GET /audit); nothing changes it; a student's export finds
their entries and their erasure removes them. On SQLite and PostgreSQL."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.audit import service as audit
from bedel.audit.models import Action
from bedel.auth import Caller, CallerKind
from bedel.config import Settings
from bedel.paging import MAX_OFFSET
from bedel.privacy import service as privacy

CLIENT = {"Authorization": "Bearer client-key"}
STAFF = {"Authorization": "Bearer staff-key"}
PHONE = "+5215512345678"
CANONICAL = "+525512345678"
OTHER = "+525587654321"
RECORD = {"name": "Ana Pérez", "email": "ana@example.edu", "external_id": "A0001", "attributes": {}}


@pytest.fixture
async def staff_client(make_client: Callable[..., Any], make_settings: Callable[..., Settings]) -> Any:
    async with make_client(make_settings(api_keys="client-key", staff_api_keys="staff-key")) as client:
        yield client


async def entries(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/audit", params=params, headers=STAFF)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


class TestRecordedOverTheAPI:
    async def test_reading_a_thread_records_who_what_when_and_from_where(self, staff_client: httpx.AsyncClient) -> None:
        await staff_client.post("/chat", json={"phone": PHONE, "question": "Hola"}, headers=CLIENT)
        thread = (await staff_client.get("/threads", headers=STAFF)).json()["items"][0]
        assert (await staff_client.get(f"/threads/{thread['id']}/messages", headers=STAFF)).status_code == 200

        [entry] = await entries(staff_client)
        assert entry["action"] == "thread.read"
        assert entry["phone"] == CANONICAL
        assert entry["target"] == thread["id"]
        assert (entry["actor_kind"], entry["actor_role"], entry["address"]) == ("key", "staff", "127.0.0.1")
        assert entry["actor_name"].startswith("settings key ")
        assert entry["at"]

    async def test_reading_editing_and_deleting_a_student_are_recorded(self, staff_client: httpx.AsyncClient) -> None:
        assert (await staff_client.put(f"/students/{PHONE}", json=RECORD, headers=STAFF)).status_code == 201
        assert (await staff_client.get(f"/students/{PHONE}", headers=STAFF)).status_code == 200
        assert (await staff_client.delete(f"/students/{PHONE}", headers=STAFF)).status_code == 204

        actions = [entry["action"] for entry in await entries(staff_client, phone=PHONE)]
        assert actions == ["student.delete", "student.read", "student.edit"]

    async def test_a_refused_read_records_nothing(self, staff_client: httpx.AsyncClient) -> None:
        assert (await staff_client.get(f"/students/{PHONE}", headers=STAFF)).status_code == 404
        assert await entries(staff_client) == []

    async def test_an_entry_holds_no_student_data_but_the_phone(self, staff_client: httpx.AsyncClient) -> None:
        await staff_client.put(f"/students/{PHONE}", json=RECORD, headers=STAFF)
        logged = str(await entries(staff_client))
        assert not any(value in logged for value in ("Ana", "ana@example.edu", "A0001"))


class TestReadOnlyForAdmins:
    async def test_a_client_key_may_not_read_the_log(self, staff_client: httpx.AsyncClient) -> None:
        assert (await staff_client.get("/audit", headers=CLIENT)).status_code == 403

    def test_no_route_changes_the_log(self, settings: Settings) -> None:
        from bedel.app import create_app

        methods = {
            method
            for route in create_app(settings).routes
            if getattr(route, "path", "").startswith(("/audit", "/console/audit"))
            for method in getattr(route, "methods", set())
        }
        assert methods <= {"GET", "HEAD"}

    async def test_paging_is_bounded_and_newest_first(self, staff_client: httpx.AsyncClient) -> None:
        for phone in (PHONE, OTHER):
            await staff_client.put(f"/students/{phone}", json=RECORD, headers=STAFF)
        first = await entries(staff_client, limit=1)
        second = await entries(staff_client, limit=1, offset=1)
        assert [first[0]["phone"], second[0]["phone"]] == [OTHER, CANONICAL]
        too_far = await staff_client.get("/audit", params={"offset": MAX_OFFSET + 1}, headers=STAFF)
        not_a_phone = await staff_client.get("/audit", params={"phone": "abc"}, headers=STAFF)
        assert (too_far.status_code, not_a_phone.status_code) == (422, 422)
        assert not_a_phone.json()["error"]["field"] == "phone"


CONSOLE = Caller(CallerKind.console, "admin@example.edu", "admin", "10.0.0.7")


class TestStudentsRights:
    async def test_a_students_export_holds_the_entries_about_them_only(self, session: AsyncSession) -> None:
        await audit.record(session, CONSOLE, Action.student_read, phone=PHONE)
        await audit.record(session, CONSOLE, Action.student_read, phone=OTHER)
        await audit.record(session, CONSOLE, Action.student_export, phone=PHONE)

        about = (await privacy.export_student(session, PHONE, CONSOLE)).holdings["audit"]

        assert [entry["action"] for entry in about] == [Action.student_read, Action.student_export]
        assert {entry["phone"] for entry in about} == {CANONICAL}
        assert (about[0]["actor_name"], about[0]["address"]) == ("admin@example.edu", "10.0.0.7")

    async def test_an_erasure_removes_their_entries_and_records_itself_by_receipt(self, session: AsyncSession) -> None:
        await audit.record(session, CONSOLE, Action.student_read, phone=PHONE)
        await audit.record(session, CONSOLE, Action.student_read, phone=OTHER)

        erasure = await privacy.erase_student(session, PHONE, CONSOLE)

        remaining = await audit.list_entries(session, limit=10, offset=0)
        assert [(entry.action, entry.phone, entry.target) for entry in remaining] == [
            (Action.student_erase, None, str(erasure.id)),
            (Action.student_read, OTHER, None),
        ]
        assert erasure.removed == {"audit": 1}

    async def test_the_command_line_records_key_changes(self, session: AsyncSession) -> None:
        await audit.record(session, Caller.command_line(), Action.key_create, target="sitio web")
        [entry] = await audit.list_entries(session, action=Action.key_create, limit=10, offset=0)
        assert (entry.actor_kind, entry.actor_role, entry.address, entry.target) == (
            "command",
            "admin",
            None,
            "sitio web",
        )
