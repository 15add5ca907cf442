"""Burst merging: texts one phone writes in a row get one answer; a clock the test moves decides the window."""

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import event, select

from bedel.channels.models import ChannelContact
from bedel.chat.service import AskedQuestion
from bedel.config import Settings
from bedel.db import as_utc, create_engine
from bedel.identities.service import anonymous_key
from bedel.texts.catalog import texts_for
from tests.channels.test_identity import BSUID, STUDENTS
from tests.channels.test_whatsapp import (
    PHONE,
    WA_ID,
    all_jobs_finished,
    jobs,
    llm_settings,
    post,
    sent_bodies,
    thread_messages,
)
from tests.channels.vendors import (
    CHANNEL_SETTINGS,
    GRAPH_MESSAGES_URL,
    button_reply,
    graph_sent,
    sent_buttons,
    text_message,
    username_message,
)
from tests.clocks import FakeClock
from tests.llm_fakes import LLM_BASE_URL, completion, sent_messages
from tests.polling import eventually

ES = texts_for("es")
NOT_HELPFUL_REPLY = ES.not_helpful
SUBSCRIBED_REPLY = ES.subscribed
UNSUBSCRIBED_REPLY = ES.unsubscribed
FRAGMENTS = ["hola", "una pregunta", "¿cuánto debo?"]
# The quiet time after a burst's last message before it is answered (BEDEL_WHATSAPP_BURST_WINDOW_S).
WINDOW_S = 3


async def last_inbound_at(database_url: str) -> datetime:
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        moment = (await connection.execute(select(ChannelContact.last_inbound_at))).scalar_one()
    await engine.dispose()
    return as_utc(moment)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def burst_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**{**CHANNEL_SETTINGS, **llm_settings(), "whatsapp_burst_window_s": WINDOW_S})


class Vendors:
    """The LLM echoes the question it was asked; the Graph API accepts every send."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.questions: list[str] = []
        self.held = False
        # When set, every call waits for it (a slow model answering several phones at once).
        self.held_until: asyncio.Event | None = None
        self.llm = router.post(f"{LLM_BASE_URL}/chat/completions").mock(side_effect=self._answer)
        self.graph = router.post(GRAPH_MESSAGES_URL).mock(return_value=graph_sent(WA_ID))

    async def _answer(self, request: httpx.Request) -> httpx.Response:
        question = sent_messages(request)[-1]["content"]
        self.questions.append(question)
        if self.held and len(self.questions) == 1:
            await asyncio.Event().wait()  # a slow model: only a cancellation ends this call
        if self.held_until is not None:
            await self.held_until.wait()
        return completion(f"eco: {question}")


@pytest.fixture
def vendors() -> Any:
    with respx.mock(assert_all_called=False) as router:
        yield Vendors(router)


def wake(*clients: Any) -> None:
    for client in clients:
        client.app.state.bedel.jobs.wake()


async def window_closes(app: Any, clock: FakeClock, vendors: Vendors, sends: int) -> None:
    """The burst window passes with no new message: its answer goes out, the `sends`-th send in all."""
    clock.advance(WINDOW_S)
    wake(app)
    await eventually(lambda: vendors.graph.call_count == sends)


async def leader_postponed_to(database_url: str, moment: Any) -> bool:
    leader = (await jobs(database_url, "channels.answer"))[0]
    return leader.status == "queued" and as_utc(leader.run_after) == moment


class TestBursts:
    async def test_three_fragments_in_four_seconds_get_one_answer_across_workers(
        self,
        make_client: Callable[..., Any],
        burst_settings: Settings,
        clock: FakeClock,
        vendors: Vendors,
        clean_database: str,
    ) -> None:
        api, worker = make_client(burst_settings, clock), make_client(burst_settings, clock)
        async with api as client, worker:
            sent_at = int(time.time()) - 60  # the vendor's timestamp of the first fragment
            for n, fragment in enumerate(FRAGMENTS):
                if n:
                    clock.advance(2)
                await post(client, text_message(WA_ID, fragment, f"wamid.burst{n}", timestamp=sent_at + 2 * n))
            last_at = clock.now
            clock.advance(1)
            wake(api, worker)
            # Five seconds after the first, one after the last: the leader waits for three quiet seconds.
            await eventually(lambda: leader_postponed_to(clean_database, last_at + timedelta(seconds=3)))
            assert vendors.llm.call_count == 0

            clock.advance(2)
            wake(api, worker)
            await eventually(lambda: vendors.graph.call_count == 1)
            messages = await thread_messages(client)

        assert vendors.questions == ["\n".join(FRAGMENTS)]
        assert sent_bodies(vendors.graph) == ["eco: " + "\n".join(FRAGMENTS)]
        assert [(m["role"], m["content"]) for m in messages] == [
            *(("user", fragment) for fragment in FRAGMENTS),
            ("assistant", "eco: " + "\n".join(FRAGMENTS)),
        ]
        answers = await jobs(clean_database, "channels.answer")
        assert [(j.status, j.attempts) for j in answers] == [("done", 1), ("done", 0), ("done", 0)]
        assert len(await jobs(clean_database, "channels.deliver")) == 1
        # The followers' jobs never ran; their sender was recorded all the same: the window runs from the last text.
        assert await last_inbound_at(clean_database) == datetime.fromtimestamp(sent_at + 4, UTC)

    async def test_a_burst_that_never_goes_quiet_is_answered_ten_seconds_after_its_first_message(
        self,
        make_client: Callable[..., Any],
        burst_settings: Settings,
        clock: FakeClock,
        vendors: Vendors,
        clean_database: str,
    ) -> None:
        texts = [f"parte {n}" for n in range(5)]
        app = make_client(burst_settings, clock)
        async with app as client:
            first_at = clock.now
            # Never three quiet seconds: at 0, 2.5, 5, 7.5 and 9.5 s.
            for n, text in enumerate(texts):
                if n:
                    clock.advance(2 if n == len(texts) - 1 else 2.5)
                await post(client, text_message(WA_ID, text, f"wamid.cap{n}"))
                wake(app)
            await eventually(lambda: leader_postponed_to(clean_database, first_at + timedelta(seconds=10)))
            assert vendors.llm.call_count == 0
            clock.advance(0.5)
            wake(app)
            await eventually(lambda: vendors.graph.call_count == 1)
            clock.advance(1)
            await post(client, text_message(WA_ID, "otra cosa", "wamid.cap-after"))
            await window_closes(app, clock, vendors, sends=2)

        assert vendors.questions == ["\n".join(texts), "otra cosa"]

    async def test_a_message_during_generation_restarts_the_answer_with_every_text(
        self,
        make_client: Callable[..., Any],
        burst_settings: Settings,
        clock: FakeClock,
        vendors: Vendors,
        clean_database: str,
    ) -> None:
        vendors.held = True
        app = make_client(burst_settings, clock)
        async with app as client:
            await post(client, text_message(WA_ID, "hola", "wamid.gen0"))
            await post(client, text_message(WA_ID, "¿cuánto debo?", "wamid.gen1"))
            clock.advance(WINDOW_S)
            wake(app)
            await eventually(lambda: len(vendors.questions) == 1)

            await post(client, text_message(WA_ID, "y para cuándo", "wamid.gen2"))
            await eventually(lambda: leader_postponed_to(clean_database, clock.now + timedelta(seconds=3)))
            await window_closes(app, clock, vendors, sends=1)
            messages = await thread_messages(client)

        every_text = "hola\n¿cuánto debo?\ny para cuándo"
        assert vendors.questions == ["hola\n¿cuánto debo?", every_text]
        assert sent_bodies(vendors.graph) == [f"eco: {every_text}"]
        assert [(m["role"], m["content"]) for m in messages] == [
            ("user", "hola"),
            ("user", "¿cuánto debo?"),
            ("user", "y para cuándo"),
            ("assistant", f"eco: {every_text}"),
        ]

    async def test_answers_generated_at_once_share_one_look_and_a_late_text_restarts_only_its_own(
        self,
        make_client: Callable[..., Any],
        burst_settings: Settings,
        clock: FakeClock,
        vendors: Vendors,
        clean_database: str,
    ) -> None:
        wa_ids = [f"52155123456{n}0" for n in range(3)]
        looks: list[list[str]] = []  # the answer keys each read of the phones' queued answers asked for

        def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if "FROM jobs" in statement and "IN (" in statement and "ORDER BY jobs.id" in statement:
                looks.append(sorted(p for p in parameters if isinstance(p, str) and p.startswith("answer:")))

        vendors.held_until = asyncio.Event()
        app = make_client(burst_settings, clock)
        async with app as client:
            event.listen(app.app.state.bedel.engine.sync_engine, "before_cursor_execute", record)
            for n, wa_id in enumerate(wa_ids):
                await post(client, text_message(wa_id, f"pregunta {n}", f"wamid.many{n}"))
            clock.advance(WINDOW_S)
            wake(app)
            await eventually(lambda: len(vendors.questions) == 3)
            looks.clear()
            await eventually(lambda: len(looks) >= 3)
            # Three answers being generated, one read of the queue each time it is looked at.
            assert all(len(keys) == 3 for keys in looks)

            await post(client, text_message(wa_ids[0], "y otra", "wamid.many-late"))
            await eventually(lambda: leader_postponed_to(clean_database, clock.now + timedelta(seconds=3)))
            vendors.held_until.set()
            await eventually(lambda: vendors.graph.call_count == 2)
            await window_closes(app, clock, vendors, sends=3)

        assert sorted(vendors.questions) == ["pregunta 0", "pregunta 0\ny otra", "pregunta 1", "pregunta 2"]
        assert sorted(sent_bodies(vendors.graph)) == ["eco: pregunta 0\ny otra", "eco: pregunta 1", "eco: pregunta 2"]

    async def test_a_message_after_the_answer_was_sent_gets_an_answer_of_its_own(
        self, make_client: Callable[..., Any], burst_settings: Settings, clock: FakeClock, vendors: Vendors
    ) -> None:
        app = make_client(burst_settings, clock)
        async with app as client:
            await post(client, text_message(WA_ID, "hola", "wamid.after0"))
            await window_closes(app, clock, vendors, sends=1)
            await post(client, text_message(WA_ID, "¿cuánto debo?", "wamid.after1"))
            await window_closes(app, clock, vendors, sends=2)

        assert sent_bodies(vendors.graph) == ["eco: hola", "eco: ¿cuánto debo?"]


class TestWhatJoinsABurst:
    async def test_a_button_tap_is_not_a_text_of_the_burst(
        self, make_client: Callable[..., Any], burst_settings: Settings, clock: FakeClock, vendors: Vendors
    ) -> None:
        app = make_client(burst_settings, clock)
        async with app as client:
            await post(client, text_message(WA_ID, "hola", "wamid.tap0"))
            await window_closes(app, clock, vendors, sends=1)
            no = next(b for b in sent_buttons(vendors.graph.calls[0].request) if b.startswith("feedback:no:"))

            await post(client, text_message(WA_ID, "¿cuánto debo?", "wamid.tap1"))
            clock.advance(1)
            await post(client, button_reply(WA_ID, "wamid.tap2", no, "No", replied_to="wamid.out1"))
            await window_closes(app, clock, vendors, sends=3)

        assert vendors.questions == ["hola", "¿cuánto debo?"]
        assert sent_bodies(vendors.graph) == ["eco: hola", "eco: ¿cuánto debo?", NOT_HELPFUL_REPLY]

    async def test_an_opt_out_word_is_never_merged_and_never_waits_for_quiet(
        self, make_client: Callable[..., Any], burst_settings: Settings, clock: FakeClock, vendors: Vendors
    ) -> None:
        app = make_client(burst_settings, clock)
        async with app as client:
            await post(client, text_message(WA_ID, "hola", "wamid.baja0"))
            clock.advance(1)
            await post(client, text_message(WA_ID, "BAJA", "wamid.baja1"))
            await window_closes(app, clock, vendors, sends=2)
            # On its own, ALTA is answered without waiting for the window: the clock does not move.
            await post(client, text_message(WA_ID, "ALTA", "wamid.baja2"))
            await eventually(lambda: vendors.graph.call_count == 3)
            messages = await thread_messages(client)

        assert vendors.questions == ["hola"]
        assert sent_bodies(vendors.graph) == ["eco: hola", UNSUBSCRIBED_REPLY, SUBSCRIBED_REPLY]
        assert [m["content"] for m in messages if m["role"] == "user"] == ["hola", "BAJA", "ALTA"]

    async def test_an_unverified_student_may_send_the_id_and_the_date_as_one_burst(
        self, make_client: Callable[..., Any], burst_settings: Settings, clock: FakeClock, vendors: Vendors
    ) -> None:
        app = make_client(burst_settings, clock)
        async with app as client:
            await client.post("/students/import", files={"file": ("s.csv", STUDENTS, "text/csv")})
            await post(client, username_message(BSUID, "A001", "wamid.verify0"))
            clock.advance(1)
            await post(client, username_message(BSUID, "15/03/2004", "wamid.verify1"))
            await window_closes(app, clock, vendors, sends=1)
            # An anonymous key is no phone to filter by: the student's is the only thread.
            (thread,) = (await client.get("/threads")).json()["items"]
            messages = (await client.get(f"/threads/{thread['id']}/messages")).json()["items"]

        assert vendors.questions == []
        assert thread["phone"] == anonymous_key(BSUID)
        (reply,) = sent_bodies(vendors.graph)
        assert "Lucía Pérez" in reply
        assert [(m["role"], m["content"]) for m in messages] == [
            ("user", "A001"),
            ("user", "15/03/2004"),
            ("assistant", reply),
        ]


class TestBurstCrashRecovery:
    async def test_a_burst_answered_before_a_crash_is_delivered_once_and_its_jobs_finished(
        self,
        make_client: Callable[..., Any],
        burst_settings: Settings,
        make_settings: Callable[..., Settings],
        clock: FakeClock,
        vendors: Vendors,
        clean_database: str,
    ) -> None:
        # The process took both messages, stored the burst's answer, and died before queuing the reply.
        dying = make_client(make_settings(**{**burst_settings.model_dump(), "jobs_in_process": False}), clock)
        async with dying as client:
            for n, fragment in enumerate(FRAGMENTS[:2]):
                await post(client, text_message(WA_ID, fragment, f"wamid.crash{n}"))
            questions = [AskedQuestion(f, f"whatsapp:wamid.crash{n}") for n, f in enumerate(FRAGMENTS[:2])]
            answer = await dying.app.state.bedel.chat.ask_together(PHONE, questions)

        restarted = make_client(burst_settings, clock)
        async with restarted as client:
            await eventually(lambda: vendors.graph.call_count == 1)
            await eventually(lambda: all_jobs_finished(clean_database))
            messages = await thread_messages(client)

        assert vendors.llm.call_count == 1
        assert sent_bodies(vendors.graph) == [answer.answer]
        assert [m["content"] for m in messages] == [*FRAGMENTS[:2], answer.answer]
        assert [j.status for j in await jobs(clean_database, "channels.answer")] == ["done", "done"]
