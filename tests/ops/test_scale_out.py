"""Two real `bedel serve` processes on one PostgreSQL: conversations stay whole and in order, and a
replica killed mid-load loses nothing it answered."""

import asyncio
import signal
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from bedel import migrate
from bedel.db import Base, create_engine
from tests.conftest import POSTGRES_URL
from tests.ops.conftest import FakeLLM, Served, serve_env, start_serve

Conversations = dict[str, list[tuple[str, str]]]


@pytest.fixture
async def postgres() -> AsyncIterator[str]:
    await asyncio.to_thread(migrate.upgrade, POSTGRES_URL)
    engine = create_engine(POSTGRES_URL)
    async with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(text(f"DELETE FROM {table.name}"))
    await engine.dispose()
    yield POSTGRES_URL


@pytest.fixture
async def replicas(postgres: str, fake_llm: FakeLLM, tmp_path: Path) -> AsyncIterator[list[Served]]:
    fake_llm.delay_s = 0.2
    env = serve_env(postgres, fake_llm.url)
    started = await asyncio.gather(start_serve(env, tmp_path), start_serve(env, tmp_path))
    yield list(started)
    for served in started:
        served.stop()


async def stored_conversations(database_url: str) -> Conversations:
    """Every thread's messages as (role, content), in seq order, keyed by phone."""
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT t.phone, m.role, m.content FROM messages m JOIN threads t ON t.id = m.thread_id "
                "ORDER BY t.phone, m.seq"
            )
        )
        conversations: Conversations = defaultdict(list)
        for phone, role, content in rows:
            conversations[phone].append((role, content))
    await engine.dispose()
    return conversations


def answered_in_turn(messages: list[tuple[str, str]]) -> bool:
    """user, assistant, user, assistant...: each answer echoes the question just before it."""
    pairs = list(zip(messages[::2], messages[1::2], strict=False))
    return len(messages) % 2 == 0 and all(q[0] == "user" and a == ("assistant", "ok: " + q[1]) for q, a in pairs)


async def converse(client: httpx.AsyncClient, urls: list[str], phone: str, questions: list[str]) -> list[int]:
    """One student: each question after the previous answer, to the replicas in turn."""
    return [
        (await client.post(f"{urls[n % len(urls)]}/chat", json={"phone": phone, "question": q})).status_code
        for n, q in enumerate(questions)
    ]


class TestTwoReplicas:
    async def test_conversations_stay_whole_and_in_order_across_replicas(
        self, replicas: list[Served], postgres: str
    ) -> None:
        urls = [served.url for served in replicas]
        hurried = "+525500000000"
        hurried_questions = [f"rápida {n}" for n in range(8)]
        others = {f"+5255000000{n:02d}": [f"pregunta {n}.{k}" for k in range(4)] for n in range(1, 13)}

        async with httpx.AsyncClient(timeout=30) as client:
            # The hurried student fires every question at once, alternating replicas;
            # twelve others talk at the same time, one question after another.
            hurried_statuses, *other_statuses = await asyncio.gather(
                asyncio.gather(
                    *(
                        client.post(f"{urls[n % 2]}/chat", json={"phone": hurried, "question": q})
                        for n, q in enumerate(hurried_questions)
                    )
                ),
                *(
                    converse(client, urls[n % 2 :] + urls[: n % 2], phone, qs)
                    for n, (phone, qs) in enumerate(others.items())
                ),
            )

        assert [r.status_code for r in hurried_statuses] == [200] * 8
        assert other_statuses == [[200] * 4] * 12
        stored = await stored_conversations(postgres)
        assert set(stored) == {hurried, *others}
        assert all(answered_in_turn(messages) for messages in stored.values())
        assert sorted(content for role, content in stored[hurried] if role == "user") == sorted(hurried_questions)
        for phone, questions in others.items():
            assert [content for role, content in stored[phone] if role == "user"] == questions

    async def test_a_replica_killed_mid_load_loses_nothing_it_answered(
        self, replicas: list[Served], postgres: str
    ) -> None:
        doomed, survivor = replicas
        answered: dict[str, list[str]] = defaultdict(list)
        cut_off: dict[str, str] = {}
        on_doomed: dict[str, float] = {}  # phone -> when its question left for the doomed replica

        async def student(client: httpx.AsyncClient, n: int) -> None:
            phone = f"+5255000001{n:02d}"
            await asyncio.sleep(n * 0.05)  # staggered, so some question is always mid-answer
            for k in range(6):
                question = f"pregunta {n}.{k}"
                # Like a load balancer, send to the doomed replica while it lives.
                target = doomed if k % 2 == 0 and doomed.process.poll() is None else survivor
                if target is doomed:
                    on_doomed[phone] = time.monotonic()
                try:
                    response = await client.post(f"{target.url}/chat", json={"phone": phone, "question": question})
                except httpx.TransportError:
                    # Whether the dead replica stored it is unknown; its lease holds this
                    # phone for a minute (LEASE_TTL), so this student stops here.
                    cut_off[phone] = question
                    return
                finally:
                    on_doomed.pop(phone, None)
                assert response.status_code == 200, response.text
                answered[phone].append(question)

        async with httpx.AsyncClient(timeout=30) as client:
            load = asyncio.gather(*(student(client, n) for n in range(12)))
            # Kill once the load is under way and a question is with the doomed replica while
            # the model (0.2 s) works on it: stored, but its answer not yet sent.
            while not load.done() and not (
                sum(map(len, answered.values())) >= 6
                and any(0.05 < time.monotonic() - sent < 0.15 for sent in on_doomed.values())
            ):
                await asyncio.sleep(0.005)
            doomed.process.send_signal(signal.SIGKILL)
            await load

        assert cut_off, "the kill landed after the load; nothing was tested"
        stored = await stored_conversations(postgres)
        # The dead replica had accepted a question it never answered: it is still stored.
        assert any(stored[phone][-1:] == [("user", question)] for phone, question in cut_off.items())
        for phone, questions in answered.items():
            messages = stored[phone]
            asked = [content for role, content in messages if role == "user"]
            # Every answered question is stored with its answer, in order, once.
            assert asked[: len(questions)] == questions
            assert answered_in_turn(messages[: 2 * len(questions)])
            # What the dead replica had accepted is at most one stored question, never a stray answer.
            assert len(messages) - 2 * len(questions) in ((0, 1) if phone in cut_off else (0,))
            if len(messages) > 2 * len(questions):
                assert messages[-1] == ("user", cut_off[phone])
