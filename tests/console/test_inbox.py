"""The inbox through the front door: who waits for a person, for how long, who has each
conversation, and the stream that tells the page something changed."""

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from bedel.config import Settings
from tests.console.accounts import ADMIN, AGENT, MovableClock, page_token, sign_in
from tests.console.seeding import Conversation, bot, seed, staff, student


def waiting_rows(page: str) -> list[str]:
    """Each row of the list, as text: name, phone, wait, who has it."""
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in page else ""
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in body.split("</tr>")[:-1]]


class TestWaitingList:
    async def test_handed_off_conversations_longest_waiting_first_with_their_wait(
        self, as_agent: httpx.AsyncClient, clean_database: str, clock: MovableClock
    ) -> None:
        now = clock.now
        await seed(
            clean_database,
            Conversation("+525511111111", [student("quiero hablar con alguien", 9)], now, 5, name="Beto Ruiz"),
            Conversation("+525522222222", [student("necesito ayuda", 200)], now, 185, name="Ana López"),
            Conversation("+525533333333", [student("hola", 2), bot("¡Hola!", 1)], now, None, name="Bot Only"),
        )
        page = await as_agent.get("/console/inbox")
        assert page.status_code == 200
        rows = waiting_rows(page.text)
        assert len(rows) == 2
        assert rows[0].startswith("Ana López +525522222222 3 h 5 min Sin asignar")
        assert rows[1].startswith("Beto Ruiz +525511111111 5 min Sin asignar")
        assert "Esperando a una persona: 2" in page.text

    async def test_a_persons_reply_ends_the_wait_and_the_students_next_message_starts_it(
        self, as_agent: httpx.AsyncClient, clean_database: str, clock: MovableClock
    ) -> None:
        now = clock.now
        await seed(
            clean_database,
            Conversation("+525511111111", [student("ayuda", 60), staff("Hola, soy Ana", 40)], now, 50),
            Conversation(
                "+525522222222",
                [student("ayuda", 60), staff("Hola, soy Ana", 40), student("gracias, otra duda", 12)],
                now,
                50,
            ),
            # Each conversation's own last reply counts, not the latest anyone wrote.
            Conversation("+525533333333", [student("ayuda", 9), staff("Ya te atiendo", 3)], now, 8),
        )
        rows = waiting_rows((await as_agent.get("/console/inbox")).text)
        assert "+525522222222 12 min" in rows[0]
        assert "Respondida; espera al estudiante" in rows[1]
        assert "Respondida; espera al estudiante" in rows[2]

    async def test_the_wait_grows_with_the_clock(
        self, as_agent: httpx.AsyncClient, clean_database: str, clock: MovableClock
    ) -> None:
        await seed(
            clean_database,
            Conversation("+525511111111", [student("ayuda", 26 * 60)], clock.now, 26 * 60),
            Conversation("+525522222222", [student("ayuda", 1)], clock.now, 1),
        )
        clock.advance(minutes=20)
        rows = waiting_rows((await as_agent.get("/console/inbox/list")).text)
        assert "+525511111111 1 d 2 h" in rows[0]
        assert "+525522222222 21 min" in rows[1]

    async def test_a_handoff_the_assistant_makes_arrives_with_its_wait(
        self, as_agent: httpx.AsyncClient, clock: MovableClock
    ) -> None:
        # Over the API (no reply buttons) the assistant hands over at once, in the turn's own statement.
        asked = await as_agent.post(
            "/chat", json={"phone": "+525544444444", "question": "quiero hablar con una persona"}
        )
        assert asked.json()["handoff"] is True
        # The turn stamps the handoff with the real time, a moment after the test clock's start.
        clock.advance(minutes=7, seconds=30)
        rows = waiting_rows((await as_agent.get("/console/inbox")).text)
        assert len(rows) == 1
        assert "+525544444444 7 min Sin asignar" in rows[0]

    async def test_an_empty_inbox_says_so(self, as_agent: httpx.AsyncClient) -> None:
        assert "Nadie espera a una persona ahora." in (await as_agent.get("/console/inbox")).text

    async def test_others_see_who_took_it(
        self,
        as_agent: httpx.AsyncClient,
        other_replica: httpx.AsyncClient,
        clean_database: str,
        clock: MovableClock,
    ) -> None:
        [thread_id] = await seed(clean_database, Conversation("+525511111111", [student("ayuda", 5)], clock.now, 5))
        token = await page_token(as_agent, "/console/inbox")
        taken = await as_agent.post(f"/console/conversations/{thread_id}/take", data={"csrf_token": token})
        assert taken.status_code == 303
        assert "La atiendes tú" in waiting_rows((await as_agent.get("/console/inbox")).text)[0]
        await sign_in(other_replica, *ADMIN)
        assert f"La atiende {AGENT[0]}" in waiting_rows((await other_replica.get("/console/inbox")).text)[0]


class TestPages:
    async def test_the_pages_go_on_with_those_waiting_less_none_missing_or_twice(
        self, as_agent: httpx.AsyncClient, clean_database: str, clock: MovableClock
    ) -> None:
        # 120 waiting, 50 a page: conversation i has waited 200 - i minutes.
        phones = [f"+5255{i:08d}" for i in range(120)]
        await seed(
            clean_database,
            *(Conversation(phone, [student("ayuda", 200 - i)], clock.now, 200 - i) for i, phone in enumerate(phones)),
        )
        pages = [await as_agent.get("/console/inbox", params={"page": page}) for page in (1, 2, 3)]
        shown = [re.findall(r"\+5255\d{8}", " ".join(waiting_rows(page.text))) for page in pages]
        assert [len(rows) for rows in shown] == [50, 50, 20]
        assert shown[0] + shown[1] + shown[2] == phones  # the longest waiting first, across the pages
        assert all("Esperando a una persona: 120" in page.text for page in pages)
        assert "1–50 de 120" in pages[0].text and "101–120 de 120" in pages[2].text
        assert 'href="/console/inbox?page=2" rel="next"' in pages[0].text
        assert 'href="/console/inbox?page=1" rel="prev"' in pages[1].text
        assert 'href="/console/inbox?page=3" rel="next"' in pages[1].text
        assert 'rel="next"' not in pages[2].text
        # The live update refetches the page the agent is on.
        assert 'hx-get="/console/inbox/list?page=2"' in pages[1].text
        listed = await as_agent.get("/console/inbox/list", params={"page": 2})
        assert re.findall(r"\+5255\d{8}", " ".join(waiting_rows(listed.text))) == shown[1]

    async def test_a_page_past_the_end_says_where_they_are(
        self, as_agent: httpx.AsyncClient, clean_database: str, clock: MovableClock
    ) -> None:
        await seed(clean_database, Conversation("+525511111111", [student("ayuda", 5)], clock.now, 5))
        page = await as_agent.get("/console/inbox", params={"page": 4})
        assert waiting_rows(page.text) == []
        assert "Esta página ya no tiene conversaciones" in page.text
        assert 'href="/console/inbox?page=3" rel="prev"' in page.text

    async def test_a_page_that_is_no_number_is_refused(self, as_agent: httpx.AsyncClient) -> None:
        assert (await as_agent.get("/console/inbox", params={"page": "0"})).status_code == 422
        assert (await as_agent.get("/console/inbox/list", params={"page": "dos"})).status_code == 422


@pytest.fixture
async def live(
    make_client: Callable[..., Any], make_settings: Callable[..., Settings], clock: MovableClock, accounts: None
) -> AsyncIterator[httpx.AsyncClient]:
    """An agent on an app whose streams poll often and end quickly, so a test reads one whole."""
    settings = make_settings(console_live_poll_s=0.01, console_live_stream_s=0.2)
    async with make_client(settings, clock) as client:
        assert (await sign_in(client, *AGENT)).status_code == 303
        yield client


def seen_in(page: str) -> str:
    found = re.search(r'sse-connect="(/console/[^"?]+/events)\?seen=([^"]*)"', page)
    assert found is not None, page
    return found.group(2)


class TestLiveUpdates:
    async def test_the_stream_says_changed_when_a_handoff_arrives(
        self, live: httpx.AsyncClient, clean_database: str, clock: MovableClock
    ) -> None:
        page = await live.get("/console/inbox")
        assert 'hx-trigger="sse:changed"' in page.text
        seen = seen_in(page.text)
        quiet = await live.get(f"/console/inbox/events?seen={seen}")
        assert quiet.headers["content-type"].startswith("text/event-stream")
        assert "event: changed" not in quiet.text

        await seed(clean_database, Conversation("+525511111111", [student("ayuda", 1)], clock.now, 1))
        told = await live.get(f"/console/inbox/events?seen={seen}")
        assert told.text.count("event: changed") == 1
        assert "+525511111111" in (await live.get("/console/inbox/list")).text

    async def test_the_conversation_stream_says_changed_when_a_receipt_moves_a_tick(
        self, live: httpx.AsyncClient, clean_database: str, clock: MovableClock
    ) -> None:
        [thread_id] = await seed(
            clean_database, Conversation("+525511111111", [student("ayuda", 3), staff("Hola", 1)], clock.now, 2)
        )
        seen = seen_in((await live.get(f"/console/conversations/{thread_id}")).text)
        assert "event: changed" not in (await live.get(f"/console/conversations/{thread_id}/events?seen={seen}")).text
        engine_url = clean_database
        await _deliver_last_staff_message(engine_url)
        changed = await live.get(f"/console/conversations/{thread_id}/events?seen={seen}")
        assert "event: changed" in changed.text
        assert "Entregado" in (await live.get(f"/console/conversations/{thread_id}/history")).text


async def _deliver_last_staff_message(database_url: str) -> None:
    """A delivery receipt, applied as the webhooks apply it (through chat.threads)."""
    from sqlalchemy import select

    from bedel.chat import threads
    from bedel.chat.models import Message, Role
    from bedel.db import create_engine, create_sessionmaker, session_scope
    from bedel.delivery import DeliveryStatus

    engine = create_engine(database_url)
    try:
        async for session in session_scope(create_sessionmaker(engine)):
            message = await session.scalar(select(Message).where(Message.role == Role.staff))
            assert message is not None
            message.vendor_message_id = "wamid.receipt"
            await session.flush()
            assert await threads.apply_receipt(session, "wamid.receipt", DeliveryStatus.delivered, None, None)
    finally:
        await engine.dispose()
