"""Threads: one per phone, kept across restarts, readable page by page, forgettable; other packages append to them."""

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.chat.models import Message, Role, Thread
from bedel.chat.repository import ThreadRepository
from bedel.chat.threads import NewMessage, append_message, append_messages
from bedel.config import Settings
from bedel.delivery import DeliveryStatus
from bedel.errors import Conflict

PHONE = "+5215512345678"


async def ask(client: httpx.AsyncClient, question: str, phone: str = PHONE) -> dict[str, Any]:
    response = await client.post("/chat", json={"phone": phone, "question": question})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


class TestThreadsSurviveRestarts:
    async def test_conversation_is_there_after_a_new_app_starts(
        self, make_client: Callable[[Settings], Any], settings: Settings
    ) -> None:
        async with make_client(settings) as client:
            first = await ask(client, "hola")
        async with make_client(settings) as restarted:
            second = await ask(restarted, "sigo aquí")
            messages = (await restarted.get(f"/threads/{first['thread_id']}/messages")).json()["items"]

        assert second["thread_id"] == first["thread_id"]
        assert [(m["seq"], m["role"], m["content"]) for m in messages[::2]] == [
            (1, "user", "hola"),
            (3, "user", "sigo aquí"),
        ]
        assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]


class TestListingThreads:
    async def test_filter_by_phone_in_any_shape(self, client: httpx.AsyncClient) -> None:
        await ask(client, "hola")
        await ask(client, "hola", phone="+34612345678")

        response = await client.get("/threads", params={"phone": "55 1234 5678"})

        assert [t["phone"] for t in response.json()["items"]] == ["+525512345678"]

    async def test_unknown_thread_is_a_404(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/threads/00000000-0000-0000-0000-000000000000/messages")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


class TestMessagePages:
    async def test_pages_follow_next_after_until_the_end(self, client: httpx.AsyncClient) -> None:
        for number in range(5):
            thread_id = (await ask(client, f"pregunta {number}"))["thread_id"]

        seen: list[int] = []
        after = 0
        while True:
            page = (await client.get(f"/threads/{thread_id}/messages", params={"after": after, "limit": 3})).json()
            seen += [m["seq"] for m in page["items"]]
            if page["next_after"] is None:
                break
            after = page["next_after"]

        assert seen == list(range(1, 11))

    async def test_assistant_messages_record_usage_and_model(self, client: httpx.AsyncClient) -> None:
        thread_id = (await ask(client, "hola"))["thread_id"]
        reply = (await client.get(f"/threads/{thread_id}/messages")).json()["items"][1]

        assert reply["model"] == "offline"
        assert reply["usage_estimated"] is True
        assert reply["input_tokens"] > 0
        assert reply["output_tokens"] > 0


class TestForgettingAThread:
    async def test_delete_forgets_messages_but_keeps_the_student(self, client: httpx.AsyncClient) -> None:
        upload = (
            "alumnos.csv",
            "telefono,nombre,adeudo\n+52 55 1234 5678,Lucía Pérez,1500\n",
            "text/csv",
        )
        assert (await client.post("/students/import", files={"file": upload})).status_code == 200
        old = await ask(client, "hola")

        assert (await client.delete(f"/threads/{old['thread_id']}")).status_code == 204

        assert (await client.get(f"/threads/{old['thread_id']}/messages")).status_code == 404
        assert (await client.get("/students/+525512345678")).status_code == 200
        new = await ask(client, "hola de nuevo")
        assert new["thread_id"] != old["thread_id"]
        messages = (await client.get(f"/threads/{new['thread_id']}/messages")).json()["items"]
        assert messages[0]["content"] == "hola de nuevo"


class TestTimestamps:
    async def test_timestamps_carry_their_utc_offset_on_every_database(self, client: httpx.AsyncClient) -> None:
        thread_id = (await ask(client, "hola"))["thread_id"]
        thread = (await client.get("/threads")).json()["items"][0]
        message = (await client.get(f"/threads/{thread_id}/messages")).json()["items"][0]

        assert thread["created_at"].endswith("Z") or thread["created_at"].endswith("+00:00")
        assert message["created_at"].endswith("Z") or message["created_at"].endswith("+00:00")


OTHER = "+525598765432"


async def stored(session: AsyncSession) -> list[tuple[str, int, str]]:
    rows = await session.execute(
        select(Thread.phone, Message.seq, Message.content).join(Thread).order_by(Thread.phone, Message.seq)
    )
    return [(phone, seq, content) for phone, seq, content in rows]


async def hold_turn(session: AsyncSession, phone: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A chat turn in progress on the phone's thread: its id and the lease token."""
    threads = ThreadRepository.from_session(session)
    await threads.create([phone])
    token = uuid.uuid4()
    turn = await threads.open_turn(phone, token, timedelta(minutes=1))
    assert turn is not None
    return turn.thread_id, token


class TestAppendingManyMessages:
    async def test_missing_threads_are_started_and_each_message_takes_the_next_seq_in_order(
        self, session: AsyncSession
    ) -> None:
        await append_message(session, PHONE, Role.user, "hola")
        batch = [
            NewMessage(PHONE, Role.assistant, "uno"),
            NewMessage(OTHER, Role.assistant, "dos"),
            NewMessage(PHONE, Role.assistant, "tres"),
            NewMessage(PHONE, Role.assistant, "cuatro"),
        ]

        ids = await append_messages(session, batch)

        assert None not in ids and len(set(ids)) == 4
        assert await stored(session) == [
            (PHONE, 1, "hola"),
            (PHONE, 2, "uno"),
            (PHONE, 3, "tres"),
            (PHONE, 4, "cuatro"),
            (OTHER, 1, "dos"),
        ]
        assert await session.scalar(select(Thread.message_count).where(Thread.phone == PHONE)) == 4

    async def test_a_thread_a_turn_holds_takes_none_of_its_messages_and_they_are_reported(
        self, session: AsyncSession
    ) -> None:
        await hold_turn(session, PHONE)
        batch = [
            NewMessage(PHONE, Role.assistant, "uno"),
            NewMessage(OTHER, Role.assistant, "dos"),
            NewMessage(PHONE, Role.assistant, "tres"),
        ]

        ids = await append_messages(session, batch)

        assert ids[0] is None and ids[2] is None and ids[1] is not None
        assert await stored(session) == [(OTHER, 1, "dos")]

    async def test_once_the_turn_is_over_a_reported_message_takes_the_seq_after_the_turns(
        self, session: AsyncSession
    ) -> None:
        thread_id, token = await hold_turn(session, PHONE)
        [reported] = await append_messages(session, [NewMessage(PHONE, Role.assistant, "uno")])
        await ThreadRepository.from_session(session).close_turn(thread_id, token)

        await append_message(session, PHONE, Role.assistant, "uno")

        assert reported is None
        assert await stored(session) == [(PHONE, 2, "uno")]

    async def test_messages_keep_their_role_source_and_delivery_status(self, session: AsyncSession) -> None:
        batch = [
            NewMessage(PHONE, Role.user, "hola", source_id="whatsapp:wamid.1"),
            NewMessage(OTHER, Role.assistant, "recordatorio", delivery_status=DeliveryStatus.sent),
        ]

        ids = await append_messages(session, batch)

        messages = [await session.get(Message, message_id) for message_id in ids]
        assert [(m.role, m.source_id, m.delivery_status) for m in messages if m is not None] == [
            (Role.user, "whatsapp:wamid.1", None),
            (Role.assistant, None, DeliveryStatus.sent),
        ]

    async def test_an_empty_batch_appends_nothing(self, session: AsyncSession) -> None:
        assert await append_messages(session, []) == []
        assert await stored(session) == []


class TestAppendingOneMessage:
    async def test_while_a_turn_holds_the_thread_it_is_a_conflict(self, session: AsyncSession) -> None:
        await hold_turn(session, PHONE)

        with pytest.raises(Conflict):
            await append_message(session, PHONE, Role.staff, "te atiendo yo")

        assert await stored(session) == []
