"""The database cut mid-load, through a TCP proxy between the app and PostgreSQL (tests/tcp_proxy.py):
/chat and the webhooks answer 503 with Retry-After while it is out, the console shows a page, the pool
reconnects by itself once the proxy heals, and everything acknowledged is stored and answered once.
On SQLite the equivalent fault is the file locked by another writer past the busy timeout."""

import asyncio
import json
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
import structlog
from sqlalchemy import make_url, select, text
from sqlalchemy.exc import DBAPIError

from bedel import migrate
from bedel.chat.models import Message, Thread
from bedel.config import Settings
from bedel.db import create_engine, is_database_outage
from bedel.ops.logging import configure_logging
from bedel.users.models import StaffRole
from tests.backends import POSTGRES_URL
from tests.channels.vendors import (
    CHANNEL_SETTINGS,
    GRAPH_MESSAGES_URL,
    TWILIO_MESSAGES_URL,
    graph_sent,
    signed,
    text_message,
    twilio_form,
    twilio_sent,
    twilio_signed,
)
from tests.console.accounts import ADMIN, add_account, sign_in
from tests.llm_fakes import LLM_BASE_URL, completion
from tests.ops.processes import all_jobs
from tests.polling import eventually
from tests.tcp_proxy import TcpProxy
from tests.users.hashing import fast_password_hashing  # noqa: F401  (the console account signs in quickly)

# A conversation left mid-turn by the cut is held by its lease until it lapses (BEDEL_LEASE_S, 60 s by default).
LEASE_S = 2.0
# Words every question carries, so the log scan can tell a statement's parameters apart.
MARK = "confidencial"


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    target = make_url(POSTGRES_URL)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
def make_proxied_settings(postgres: str, proxy: TcpProxy, tmp_path: Path) -> Callable[..., Settings]:
    """The app with both channels on, reaching PostgreSQL only through the proxy."""
    url = make_url(postgres).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": url,
            "knowledge_index_dir": tmp_path / "index",
            "rate_limit_per_phone": "100000/minute",
            "lease_s": LEASE_S,
            "privacy_notice": "off",  # each webhook thread holds its questions and answers only
            **CHANNEL_SETTINGS,
        }
        return Settings(_env_file=None, **(values | overrides))

    return make


@pytest.fixture
def proxied_settings(make_proxied_settings: Callable[..., Settings]) -> Settings:
    return make_proxied_settings()


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str]) -> Any:
    """Bedel's JSON log lines as `bedel serve` writes them; call to read those written so far."""
    configure_logging()
    yield lambda: capsys.readouterr().err
    structlog.reset_defaults()


@dataclass
class Load:
    """What the clients saw: the answers they were given, the webhooks acknowledged, every refusal."""

    answers: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (phone, question, body)
    whatsapp: list[tuple[str, str]] = field(default_factory=list)  # (wa_id, source id of the stored message)
    twilio: list[tuple[str, str]] = field(default_factory=list)
    refusals: list[httpx.Response] = field(default_factory=list)

    @property
    def acknowledged(self) -> int:
        return len(self.answers) + len(self.whatsapp) + len(self.twilio)


async def until_acknowledged(load: Load, client: httpx.AsyncClient, path: str, **request: Any) -> httpx.Response:
    """Like a client or a vendor: post again after every refusal until the request is acknowledged."""
    while True:
        response = await client.post(path, **request)
        if response.status_code < 300:
            return response
        load.refusals.append(response)
        await asyncio.sleep(0.05)


async def student_chats(client: httpx.AsyncClient, load: Load, n: int, questions: int) -> None:
    phone = f"+52550000{n:04d}"
    for k in range(questions):
        question = f"pregunta {MARK} {n}.{k}"
        response = await until_acknowledged(load, client, "/chat", json={"phone": phone, "question": question})
        load.answers.append((phone, question, response.json()))


async def student_writes(client: httpx.AsyncClient, load: Load, channel: str, n: int, messages: int) -> None:
    """A student on WhatsApp through Meta's webhook (`whatsapp`) or through Twilio's (`twilio`)."""
    wa_id = f"52155{1 if channel == 'whatsapp' else 2}234{n:04d}"
    acknowledged = load.whatsapp if channel == "whatsapp" else load.twilio
    for k in range(messages):
        text = f"mensaje {MARK} {n}.{k}"
        body: str | bytes
        if channel == "whatsapp":
            source = f"wamid.{wa_id}.{k}"
            body, headers = signed(text_message(wa_id, text, source))
        else:
            source = f"SM{n:04d}{k:026d}"
            body, headers = twilio_signed(twilio_form(wa_id, text, source))
        await until_acknowledged(load, client, f"/webhooks/{channel}", content=body, headers=headers)
        acknowledged.append((wa_id, f"{channel}:{source}"))


async def stored_messages(database_url: str) -> list[tuple[str, int, str, str, str | None, str, str | None]]:
    """Every message as (phone, seq, role, content, source_id, id, delivery_status)."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(
                    Thread.phone,
                    Message.seq,
                    Message.role,
                    Message.content,
                    Message.source_id,
                    Message.id,
                    Message.delivery_status,
                )
                .join(Thread, Thread.id == Message.thread_id)
                .order_by(Thread.phone, Message.seq)
            )
            return [
                (phone, seq, str(role), content, source, str(id_), status and str(status))
                for phone, seq, role, content, source, id_, status in rows
            ]
    finally:
        await engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
class TestPostgresCutMidLoad:
    @respx.mock(assert_all_called=False)
    async def test_nothing_acknowledged_is_lost_and_the_service_recovers_by_itself(
        self,
        respx_mock: respx.MockRouter,
        make_client: Callable[..., Any],
        proxied_settings: Settings,
        proxy: TcpProxy,
        postgres: str,
        logs: Callable[[], str],
    ) -> None:
        graph = respx_mock.post(GRAPH_MESSAGES_URL).mock(return_value=graph_sent())
        twilio = respx_mock.post(TWILIO_MESSAGES_URL).mock(return_value=twilio_sent("whatsapp:+1", "ok"))
        load = Load()
        async with make_client(proxied_settings) as client:
            students = asyncio.gather(
                *(student_chats(client, load, n, questions=8) for n in range(8)),
                *(
                    student_writes(client, load, channel, n, messages=5)
                    for channel in ("whatsapp", "twilio")
                    for n in range(4)
                ),
            )
            # Cut once the load is under way, keep it cut while requests come in, then heal.
            await eventually(lambda: load.acknowledged >= 15 or students.done())
            proxy.cut_all()
            acknowledged_at_cut = load.acknowledged
            await eventually(lambda: len(load.refusals) >= 30)
            acknowledged_while_cut = load.acknowledged - acknowledged_at_cut
            proxy.heal()
            await students
            total = len(load.whatsapp) + len(load.twilio)
            await eventually(
                lambda: graph.call_count + twilio.call_count >= total,
                within_s=30,
            )
            await eventually(lambda: _all_settled(postgres), within_s=30)

        # Requests under way at the cut may still have finished; nothing new was acknowledged while it lasted.
        assert acknowledged_while_cut <= 16
        assert not students.exception()
        bodies = [(r.status_code, r.headers.get("retry-after"), r.json()["error"]["code"]) for r in load.refusals]
        assert set(bodies) == {(503, "5", "database_unavailable")}
        # Each route told its clients to come back: /chat and both webhooks.
        assert {r.request.url.path for r in load.refusals} == {"/chat", "/webhooks/whatsapp", "/webhooks/twilio"}

        stored = await stored_messages(postgres)
        by_id = {row[5]: n for n, row in enumerate(stored)}
        # Every /chat answer given is stored once, right after its question.
        for phone, question, body in load.answers:
            n = by_id[body["message_id"]]
            assert stored[n][:4] == (phone, stored[n][1], "assistant", body["answer"])
            assert stored[n - 1][0] == phone and stored[n - 1][2:4] == ("user", question)
        assert len({body["message_id"] for _, _, body in load.answers}) == len(load.answers) == 64
        # Every acknowledged webhook message is stored once, and answered once.
        sources = Counter(row[4] for row in stored if row[2] == "user" and row[4])
        acknowledged = [source for _, source in load.whatsapp + load.twilio]
        assert len(acknowledged) == 40
        assert {source: sources[source] for source in acknowledged} == dict.fromkeys(acknowledged, 1)
        chat_phones = {phone for phone, _, _ in load.answers}
        replies = [row for row in stored if row[2] == "assistant" and row[0] not in chat_phones]
        assert sorted(Counter(row[0] for row in replies).values()) == [5] * 8
        assert {row[6] for row in replies} == {"sent"}
        # Every answer was sent. Twice only in decision 0007's at-least-once window: the vendor took a send
        # just before the cut and its job could not record it, so the job ran again.
        sent_to = Counter(json.loads(call.request.content)["to"] for call in graph.calls)
        sent_to.update(parse_qs(call.request.content.decode())["To"][0] for call in twilio.calls)
        resent = sum(kind == "channels.deliver" and attempts > 1 for kind, _, _, attempts in await all_jobs(postgres))
        assert len(sent_to) == 8
        assert min(sent_to.values()) >= 5
        assert sum(sent_to.values()) <= 40 + resent
        # What the statements carried (the questions) is in no log line, however they failed.
        written = logs()
        assert "database_unavailable" in written
        assert MARK not in written

    async def test_the_console_a_stream_and_the_staff_api_say_so_too(
        self, make_client: Callable[..., Any], proxied_settings: Settings, proxy: TcpProxy, postgres: str
    ) -> None:
        await add_account(postgres, ADMIN[0], StaffRole.admin, ADMIN[1])
        async with make_client(proxied_settings) as client:
            assert (await sign_in(client, *ADMIN)).status_code == 303
            proxy.cut_all()
            page = await client.get("/console")
            threads = await client.get("/threads")
            stream = await client.post("/chat", json={"phone": "+5255000001", "question": "hola", "stream": True})
            proxy.heal()
            again = await client.get("/console")

        assert threads.status_code == 503
        assert threads.json()["error"]["code"] == "database_unavailable"
        # Refused before its headers (asking whether any API key exists needs the database) with a 503,
        # or, when its headers left before the database was needed, its one event says why it ended.
        if stream.status_code == 503:
            assert stream.json()["error"]["code"] == "database_unavailable"
        else:
            assert stream.text.startswith("event: error\n")
            assert '"code": "database_unavailable"' in stream.text
        assert page.status_code == 503
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["retry-after"] == "5"
        assert "La base de datos no responde por un momento" in page.text
        assert again.status_code == 200

    @pytest.mark.usefixtures("logs")  # JSON lines, as served: the development console's tracebacks are slow
    @respx.mock(assert_all_called=False)
    async def test_a_turn_cut_mid_answer_gives_its_conversation_back_at_the_next_question(
        self,
        respx_mock: respx.MockRouter,
        make_client: Callable[..., Any],
        make_proxied_settings: Callable[..., Settings],
        proxy: TcpProxy,
    ) -> None:
        answering, cut = asyncio.Event(), asyncio.Event()

        async def slow_model(_: httpx.Request) -> httpx.Response:
            answering.set()
            await cut.wait()
            return completion("La inscripción cierra el viernes.")

        respx_mock.post(f"{LLM_BASE_URL}/chat/completions").mock(side_effect=slow_model)
        # The lease a dead replica's turn would hold for a minute (the default).
        settings = make_proxied_settings(
            llm_provider="openai_compatible", llm_base_url=LLM_BASE_URL, llm_api_key="sk-test", lease_s=60
        )
        ask = {"phone": "+525500000001", "question": "¿cuándo cierra la inscripción?"}
        async with make_client(settings) as client:
            first = asyncio.create_task(client.post("/chat", json=ask))
            await eventually(answering.is_set)
            # The question is stored and the model is at work: the answer cannot be stored, nor the lease given back.
            proxy.cut_all()
            cut.set()
            refused = await first
            proxy.heal()
            # This process knows the turn is dead: the next question does not wait out the minute.
            again = await asyncio.wait_for(client.post("/chat", json=ask), timeout=15)

        assert refused.status_code == 503
        assert again.status_code == 200
        assert again.json()["answer"] == "La inscripción cierra el viernes."


async def _all_settled(database_url: str) -> bool:
    jobs = await all_jobs(database_url)
    return bool(jobs) and all(status == "done" for _, _, status, _ in jobs)


class TestErrorsCarryNoParameters:
    async def test_a_failed_statement_names_no_value_it_was_given(self, clean_database: str) -> None:
        engine = create_engine(clean_database)
        try:
            with pytest.raises(DBAPIError) as failed:
                async with engine.begin() as connection:
                    # Row 1 exists already (see conftest.py): the insert fails with its values bound.
                    await connection.execute(
                        text(
                            "INSERT INTO knowledge_version (id, revision, changed_at) VALUES (1, :r, CURRENT_TIMESTAMP)"
                        ),
                        {"r": f"{MARK}-7731"},
                    )
        finally:
            await engine.dispose()

        assert "INSERT INTO knowledge_version" in str(failed.value)
        assert MARK not in str(failed.value)
        # A constraint is a bug or bad input, not an outage: the API answers it with a 500, not a 503.
        assert not is_database_outage(failed.value)


@pytest.mark.slow
class TestSQLiteLockedOut:
    async def test_a_locked_database_file_is_a_503_until_the_lock_is_released(
        self, make_client: Callable[..., Any], tmp_path: Path
    ) -> None:
        database = tmp_path / "locked.db"
        settings = Settings(
            _env_file=None, database_url=f"sqlite+aiosqlite:///{database}", knowledge_index_dir=tmp_path / "index"
        )
        await asyncio.to_thread(migrate.upgrade, settings.database_url)
        async with make_client(settings) as client:
            assert (await client.post("/chat", json={"phone": "+5255000001", "question": "hola"})).status_code == 200
            # The retention job the app runs at start writes too: settled, it is not caught mid-write by the lock
            # and does not wait out the busy timeout on the process's one connection ahead of the request.
            await eventually(lambda: _all_settled(settings.database_url))
            other = sqlite3.connect(database, check_same_thread=False)
            # Taken off the event loop, as another process would: blocking the loop would stop the app from
            # finishing a transaction it has begun, and this lock would wait out its own timeout behind it.
            await asyncio.to_thread(other.execute, "BEGIN EXCLUSIVE")
            locked = await client.post("/chat", json={"phone": "+5255000002", "question": f"{MARK} hola"})
            other.rollback()
            other.close()
            again = await client.post("/chat", json={"phone": "+5255000002", "question": "hola otra vez"})

        assert locked.status_code == 503
        assert locked.headers["retry-after"] == "5"
        assert locked.json()["error"]["code"] == "database_unavailable"
        assert MARK not in locked.text
        assert again.status_code == 200
