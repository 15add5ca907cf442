"""The dashboard (admins): what the conversations of a period amounted to, as charts with their numbers."""

import json
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from bedel.chat import activity
from bedel.chat.tasks import keep_finished_days
from bedel.config import Settings
from bedel.console.charts import percentile
from bedel.db import create_engine, create_sessionmaker, session_scope
from bedel.feedback.service import record_feedback
from bedel.phones import normalize_phone
from tests.console.accounts import ADMIN, MovableClock, sign_in
from tests.polling import eventually

PHONE = "+5215512345678"
CALENDAR = """# Calendario escolar

Las inscripciones del semestre de otoño son del 3 al 14 de agosto en la ventanilla de servicios escolares.
"""


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(model_prices={"offline": (2.0, 10.0)})


def charts(page: httpx.Response) -> dict[str, dict[str, Any]]:
    """The charts' data as the page's JSON block carries it, by chart id."""
    block = re.search(r'<script type="application/json" id="dashboard-data">(.*?)</script>', page.text, re.S)
    assert block is not None
    return {chart["id"]: chart for chart in json.loads(block.group(1))}


def figure(page: httpx.Response, name: str) -> str:
    found = re.search(rf'<dd data-figure="{name}">(.*?)</dd>', page.text)
    assert found is not None
    return found.group(1)


async def rate(database_url: str, message_id: str, *, helpful: bool) -> None:
    engine = create_engine(database_url)
    try:
        async for session in session_scope(create_sessionmaker(engine)):
            assert await record_feedback(session, normalize_phone(PHONE), uuid.UUID(message_id), helpful=helpful)
    finally:
        await engine.dispose()


async def ask(client: httpx.AsyncClient, question: str, phone: str = PHONE) -> dict[str, Any]:
    response = await client.post("/chat", json={"phone": phone, "question": question})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def run_sql(database_url: str, statement: str) -> list[Any]:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(text(statement))
            return [row[0] for row in result] if result.returns_rows else []
    finally:
        await engine.dispose()


async def kept_days(database_url: str) -> list[str]:
    return [str(day) for day in await run_sql(database_url, "SELECT day FROM activity_days ORDER BY day")]


async def keep(database_url: str, clock: MovableClock) -> list[str]:
    """What the periodic job does (chat/tasks.py): the days it kept."""
    engine = create_engine(database_url)
    try:
        return [day.isoformat() for day in await keep_finished_days(create_sessionmaker(engine), clock)]
    finally:
        await engine.dispose()


def without_waits(found: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: chart for name, chart in found.items() if name != "waits"}


async def turns_of_every_kind(client: httpx.AsyncClient) -> None:
    """An answer from a document, one that found nothing and a handoff."""
    uploaded = await client.post(
        "/knowledge/documents", files={"files": ("calendario.md", CALENDAR.encode(), "text/markdown")}
    )
    assert uploaded.status_code in (200, 201), uploaded.text
    assert (await ask(client, "¿Cuándo son las inscripciones de otoño?"))["sources"]
    await ask(client, "¿De qué color es el edificio de rectoría?", phone="+5215587654321")
    assert (await ask(client, "Quiero hablar con una persona", phone="+5215511112222"))["handoff"]


class TestDashboard:
    async def test_an_empty_period_says_so(self, as_admin: httpx.AsyncClient) -> None:
        page = await as_admin.get("/console/dashboard")
        assert page.status_code == 200
        assert figure(page, "questions") == "0"
        assert figure(page, "median") == "—"
        assert "Sin datos en este periodo." in page.text
        assert "Nadie espera a una persona ahora." in page.text
        assert len(charts(page)) == 9
        # Browsers show a date their own way; the label says what to type.
        assert 'Desde <span class="muted">(aaaa-mm-dd)</span>' in page.text

    async def test_shows_the_turns_feedback_and_handoffs_of_the_period(
        self, as_admin: httpx.AsyncClient, clean_database: str
    ) -> None:
        uploaded = await as_admin.post(
            "/knowledge/documents", files={"files": ("calendario.md", CALENDAR.encode(), "text/markdown")}
        )
        assert uploaded.status_code in (200, 201), uploaded.text
        cited = await ask(as_admin, "¿Cuándo son las inscripciones de otoño?")
        assert cited["sources"]
        unknown = await ask(as_admin, "¿De qué color es el edificio de rectoría?", phone="+5215587654321")
        assert "No tengo esa información" in unknown["answer"]
        handed = await ask(as_admin, "Quiero hablar con una persona", phone="+5215511112222")
        assert handed["handoff"]
        await rate(clean_database, cited["message_id"], helpful=True)

        page = await as_admin.get("/console/dashboard")
        assert page.status_code == 200
        assert figure(page, "questions") == "3"
        assert figure(page, "answers") == "3"
        assert figure(page, "waiting") == "1"
        found = charts(page)
        assert found["per-day"]["series"] == [{"label": "API", "values": [0, 0, 0, 0, 0, 0, 3]}]
        assert found["outcomes"]["series"][0]["values"] == [1, 0, 1, 1]
        assert found["feedback"]["series"][0]["values"][-1] == 1
        assert found["cited"]["labels"] == ["Calendario escolar"]
        assert found["unanswered"]["labels"] == ["¿de qué color es el edificio de rectoría?"]
        assert found["waits"]["series"][0]["values"] == [1, 0, 0, 0, 0]
        assert sum(sum(series["values"]) for series in found["hours"]["series"]) == 3
        # The text alternative of each chart.
        assert "3 preguntas en 7 días" in page.text
        assert "1 respuestas calificadas útiles y 0 no útiles (100 % útiles)." in page.text
        assert "El más citado: «Calendario escolar» (1 respuestas)." in page.text
        assert 'role="img" aria-label="Cómo se respondió: De 3 respuestas: 33 % con documentos' in page.text
        # Tokens priced at 2 and 10 dollars per million.
        tokens = found["tokens"]
        assert tokens["labels"][0].startswith("offline (US$ ")
        assert figure(page, "cost").startswith("US$ ")

    async def test_a_period_in_the_past_leaves_today_out(
        self, as_admin: httpx.AsyncClient, clock: MovableClock
    ) -> None:
        await ask(as_admin, "Hola")
        yesterday = (clock.now - timedelta(days=1)).date()
        page = await as_admin.get(
            "/console/dashboard",
            params={"start": (yesterday - timedelta(days=29)).isoformat(), "end": yesterday.isoformat()},
        )
        assert page.status_code == 200
        assert figure(page, "questions") == "0"
        assert len(charts(page)["per-day"]["labels"]) == 30

    async def test_a_kept_day_shows_the_numbers_it_showed_live(
        self, as_admin: httpx.AsyncClient, clock: MovableClock, clean_database: str
    ) -> None:
        await turns_of_every_kind(as_admin)
        today = clock.now.date().isoformat()
        live = await as_admin.get("/console/dashboard", params={"start": today, "end": today})
        # Two days on (a day is kept once it has been over for a while), the session has lapsed: sign in again.
        clock.advance(days=2)
        await sign_in(as_admin, *ADMIN)
        # A view keeps nothing: before the job has kept the day, it is read from its messages.
        unkept = await as_admin.get("/console/dashboard", params={"start": today, "end": today})
        assert await kept_days(clean_database) == []
        # Every day from the first message's up to the last settled one, once.
        days = [today, (clock.now.date() - timedelta(days=1)).isoformat()]
        assert await keep(clean_database, clock) == days
        assert await keep(clean_database, clock) == []
        kept = await as_admin.get("/console/dashboard", params={"start": today, "end": today})
        assert await kept_days(clean_database) == days
        # Everything but the waits, which are counted up to now.
        for page in (unkept, kept):
            assert without_waits(charts(page)) == without_waits(charts(live))
            for name in ("questions", "answers", "median", "p95", "cost"):
                assert figure(page, name) == figure(live, name)
        assert sum(charts(kept)["outcomes"]["series"][0]["values"]) == 3

    async def test_a_kept_day_is_not_read_again_from_its_messages(
        self, as_admin: httpx.AsyncClient, clock: MovableClock, clean_database: str
    ) -> None:
        await ask(as_admin, "Hola")
        day = clock.now.date()
        period = {"start": day.isoformat(), "end": (day + timedelta(days=1)).isoformat()}
        clock.advance(days=2)
        await sign_in(as_admin, *ADMIN)
        await keep(clean_database, clock)
        first = charts(await as_admin.get("/console/dashboard", params=period))
        assert first["per-day"]["series"][0]["values"] == [1, 0]
        await run_sql(clean_database, "UPDATE messages SET role = 'staff'")
        assert charts(await as_admin.get("/console/dashboard", params=period)) == first

    async def test_a_kept_day_keeps_its_most_asked_questions_that_found_nothing(
        self, as_admin: httpx.AsyncClient, clock: MovableClock, clean_database: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(activity, "KEPT_UNANSWERED", 1)
        for phone in ("+5215587654321", "+5215587654322"):
            await ask(as_admin, "¿Hay estacionamiento para motos?", phone=phone)
        await ask(as_admin, "¿De qué color es el edificio de rectoría?", phone="+5215587654323")
        clock.advance(days=2)
        await sign_in(as_admin, *ADMIN)
        await keep(clean_database, clock)
        page = await as_admin.get("/console/dashboard")
        assert charts(page)["unanswered"]["labels"] == ["¿hay estacionamiento para motos?"]
        assert await run_sql(clean_database, "SELECT asked FROM activity_unanswered") == [2]

    async def test_deleting_a_conversation_takes_it_out_of_kept_days(
        self, as_admin: httpx.AsyncClient, clock: MovableClock, clean_database: str
    ) -> None:
        await ask(as_admin, "Hola")
        unknown = await ask(as_admin, "¿De qué color es el edificio de rectoría?", phone="+5215587654321")
        day = clock.now.date().isoformat()
        clock.advance(days=2)
        await sign_in(as_admin, *ADMIN)
        await keep(clean_database, clock)
        before = await as_admin.get("/console/dashboard")
        assert figure(before, "questions") == "2"
        assert charts(before)["unanswered"]["labels"] == ["¿de qué color es el edificio de rectoría?"]

        assert (await as_admin.delete(f"/threads/{unknown['thread_id']}")).status_code == 204

        # Its day is read from the messages left until the job, asked for by the deletion, keeps it again.
        assert day not in await kept_days(clean_database)
        assert await run_sql(clean_database, "SELECT kind FROM jobs WHERE status = 'queued'") == ["activity.keep"]
        for _ in range(2):
            after = await as_admin.get("/console/dashboard")
            assert figure(after, "questions") == "1"
            assert charts(after)["unanswered"]["labels"] == []
            assert await keep(clean_database, clock) in ([day], [])
        assert day in await kept_days(clean_database)
        assert await run_sql(clean_database, "SELECT question FROM activity_unanswered") == []

    async def test_a_reversed_period_is_refused_with_the_reason(self, as_admin: httpx.AsyncClient) -> None:
        page = await as_admin.get("/console/dashboard", params={"start": "2026-03-10", "end": "2026-03-01"})
        assert page.status_code == 422
        assert "Ese periodo no se puede mostrar" in page.text
        assert len(charts(page)["per-day"]["labels"]) == 7

    async def test_a_date_that_is_not_one_is_refused(self, as_admin: httpx.AsyncClient) -> None:
        page = await as_admin.get("/console/dashboard", params={"start": "ayer"})
        assert page.status_code == 422

    async def test_draws_with_chart_js_served_by_bedel(self, as_admin: httpx.AsyncClient) -> None:
        page = await as_admin.get("/console/dashboard")
        assert '<script src="/console/static/chart.umd.min.js"></script>' in page.text
        assert '<script src="/console/static/dashboard.js"></script>' in page.text
        library = await as_admin.get("/console/static/chart.umd.min.js")
        assert library.status_code == 200
        assert "Chart.js v4.6.2" in library.text[:200]

    async def test_is_in_english_too(self, as_admin: httpx.AsyncClient) -> None:
        as_admin.cookies.set("bedel_lang", "en", path="/console")
        page = await as_admin.get("/console/dashboard")
        assert "Questions per day and channel" in page.text


class TestKeepingJob:
    async def test_the_runner_keeps_the_finished_days_soon_after_it_starts(
        self, make_client: Callable[..., Any], make_settings: Callable[..., Settings], clean_database: str
    ) -> None:
        clock = MovableClock()
        async with make_client(make_settings(), clock) as client:
            await ask(client, "Hola")
        clock.advance(days=3)
        # A replica starting (the first time, or after a night): its runner keeps every finished day.
        async with make_client(make_settings(jobs_in_process=True), clock):

            async def kept() -> bool:
                return len(await kept_days(clean_database)) == 3

            await eventually(kept)
        assert await kept_days(clean_database) == [
            (clock.now.date() - timedelta(days=n)).isoformat() for n in (3, 2, 1)
        ]
        assert await run_sql(clean_database, "SELECT status FROM jobs WHERE kind = 'activity.keep'") == ["done"]


class TestPercentile:
    def test_nearest_rank_over_a_histogram(self) -> None:
        histogram = [(100, 5), (200, 4), (900, 1)]
        assert percentile(histogram, 0.5) == 100
        assert percentile(histogram, 0.95) == 900
        assert percentile([], 0.5) is None
