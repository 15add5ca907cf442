"""Conversations through the front door: the thread view and what produced each answer, files,
delivery ticks, taking, replying within (or past) the 24-hour window, handing back, and search."""

import re
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bedel.chat.models import Message, Role, Thread, ThreadStatus
from bedel.config import ReengageFallback, Settings
from bedel.db import create_engine, create_sessionmaker
from bedel.delivery import DeliveryStatus
from bedel.jobs.models import Job
from tests.console.accounts import ADMIN, AGENT, MovableClock, page_token, sign_in
from tests.console.seeding import Conversation, bot, photo, seed, staff, student, voice_note

PHONE = "+525511111111"
FAILED = "Pasaron más de 24 horas desde el último mensaje del estudiante: WhatsApp solo acepta una plantilla."


async def stored(database_url: str, thread_id: uuid.UUID) -> tuple[Thread, list[Message]]:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            thread = await session.get(Thread, thread_id)
            assert thread is not None
            query = select(Message).where(Message.thread_id == thread_id).order_by(Message.seq)
            return thread, list((await session.scalars(query)).all())
    finally:
        await engine.dispose()


async def jobs(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return list((await connection.scalars(select(Job.kind))).all())
    finally:
        await engine.dispose()


async def post(client: httpx.AsyncClient, path: str, **form: str) -> httpx.Response:
    token = await page_token(client)
    return await client.post(path, data={"csrf_token": token, **form})


def text_of(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


async def waiting(database_url: str, clock: MovableClock, **extra: Any) -> uuid.UUID:
    [thread_id] = await seed(
        database_url,
        Conversation(
            PHONE,
            [student("quiero hablar con una persona", 12), bot("Una persona te atenderá pronto.", 11)],
            clock.now,
            11,
            name="Lucía Pérez",
            **extra,
        ),
    )
    return thread_id


class TestThreadView:
    async def test_shows_each_answers_sources_model_tokens_and_latency(
        self, as_agent: httpx.AsyncClient, clean_database: str, clock: MovableClock
    ) -> None:
        [thread_id] = await seed(
            clean_database,
            Conversation(
                PHONE,
                [student("¿cuándo cierran las inscripciones?", 5), bot("El 15 de enero.", 4, rated=False)],
                clock.now,
                name="Lucía Pérez",
            ),
        )
        page = await as_agent.get(f"/console/conversations/{thread_id}")
        assert page.status_code == 200
        shown = text_of(page.text)
        assert "Lucía Pérez +525511111111" in shown
        assert "Con el asistente" in shown
        assert "¿cuándo cierran las inscripciones?" in shown
        assert "Modelo gpt-4o-mini" in shown
        assert "Tokens 812 de entrada, 64 de salida" in shown
        assert "Tiempo de respuesta 1450 ms" in shown
        assert "Calendario escolar 2027 relevancia 0.83 Las inscripciones cierran el 15 de enero." in shown
        assert "El estudiante dijo que no le sirvió." in shown
        # The bot answers it: nothing to take or reply to.
        assert "/take" not in page.text
        assert 'name="text"' not in page.text

    async def test_plays_voice_notes_shows_images_and_serves_them_to_staff_only(
        self, as_agent: httpx.AsyncClient, clean_database: str, clock: MovableClock, console: httpx.AsyncClient
    ) -> None:
        [thread_id, other_id] = await seed(
            clean_database,
            Conversation(PHONE, [student("", 3, voice_note()), student("mi credencial", 2, photo())], clock.now, 2),
            Conversation("+525522222222", [student("hola", 1)], clock.now),
        )
        page = (await as_agent.get(f"/console/conversations/{thread_id}")).text
        audio = re.search(r'<audio controls preload="none" src="([^"]+)"', page)
        image = re.search(r'<img src="([^"]+)" alt="Mi credencial"', page)
        assert audio is not None
        assert image is not None
        assert "Transcripción: quiero mi constancia" in page
        voice = await as_agent.get(audio.group(1))
        assert voice.status_code == 200
        assert voice.content == b"OggS-voice"
        assert voice.headers["content-type"] == "audio/ogg"
        assert (await as_agent.get(image.group(1))).content == b"\xff\xd8jpeg"
        # Another thread's address does not reach this file.
        assert (await as_agent.get(audio.group(1).replace(str(thread_id), str(other_id)))).status_code == 404

        await as_agent.post("/console/logout", data={"csrf_token": await page_token(as_agent)})
        anonymous = await console.get(audio.group(1))
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/console/login")

    async def test_shows_delivery_ticks_and_why_a_message_failed(
        self, as_agent: httpx.AsyncClient, clean_database: str, clock: MovableClock
    ) -> None:
        [thread_id] = await seed(
            clean_database,
            Conversation(
                PHONE,
                [
                    student("ayuda", 30),
                    staff("primera", 20, DeliveryStatus.read),
                    staff("segunda", 15, DeliveryStatus.delivered),
                    staff("tercera", 10, DeliveryStatus.sent),
                    staff("cuarta", 5, DeliveryStatus.failed, FAILED),
                ],
                clock.now,
                25,
            ),
        )
        shown = text_of((await as_agent.get(f"/console/conversations/{thread_id}")).text)
        assert "primera ✓✓ Leído" in shown
        assert "segunda ✓✓ Entregado" in shown
        assert "tercera ✓ Enviado" in shown
        assert f"cuarta ✗ No se entregó: {FAILED}" in shown

    async def test_an_unknown_conversation_is_404(self, as_agent: httpx.AsyncClient) -> None:
        assert (await as_agent.get(f"/console/conversations/{uuid.uuid4()}")).status_code == 404


class TestTakeReplyHandBack:
    async def test_an_agent_takes_replies_and_hands_back(
        self, as_agent: httpx.AsyncClient, clean_database: str, clock: MovableClock
    ) -> None:
        thread_id = await waiting(clean_database, clock)
        page = text_of((await as_agent.get(f"/console/conversations/{thread_id}")).text)
        assert "Nadie la ha tomado todavía." in page
        # The student wrote 30 minutes ago: 23 h 30 min of window left.
        assert "Ventana de WhatsApp abierta: quedan 23 h 30 min para escribir sin plantilla." in page

        taken = await post(as_agent, f"/console/conversations/{thread_id}/take")
        assert taken.status_code == 303
        assert "La atiendes tú." in (await as_agent.get(taken.headers["location"])).text

        sent = await post(as_agent, f"/console/conversations/{thread_id}/reply", text="  Hola Lucía, soy Ana.  ")
        assert sent.status_code == 303
        thread, messages = await stored(clean_database, thread_id)
        assert (messages[-1].role, messages[-1].content) == (Role.staff, "Hola Lucía, soy Ana.")
        assert messages[-1].delivery_status == DeliveryStatus.pending
        assert await jobs(clean_database) == ["channels.deliver"]
        assert "Hola Lucía, soy Ana. 🕓 En cola" in text_of((await as_agent.get(sent.headers["location"])).text)

        back = await post(as_agent, f"/console/conversations/{thread_id}/release")
        assert back.status_code == 303
        thread, _ = await stored(clean_database, thread_id)
        assert (thread.status, thread.assigned_to) == (ThreadStatus.active, None)
        assert "Nadie espera a una persona ahora." in (await as_agent.get("/console/inbox")).text

    async def test_a_second_person_cannot_take_it_and_sees_who_has_it(
        self,
        as_agent: httpx.AsyncClient,
        other_replica: httpx.AsyncClient,
        clean_database: str,
        clock: MovableClock,
    ) -> None:
        thread_id = await waiting(clean_database, clock)
        assert (await post(as_agent, f"/console/conversations/{thread_id}/take")).status_code == 303
        await sign_in(other_replica, *ADMIN)
        page = await other_replica.get(f"/console/conversations/{thread_id}")
        assert f"La atiende {AGENT[0]}." in page.text
        assert "/take" not in page.text
        refused = await post(other_replica, f"/console/conversations/{thread_id}/take")
        assert refused.status_code == 409
        assert "Otra persona ya tomó esta conversación." in refused.text
        thread, _ = await stored(clean_database, thread_id)
        assert thread.assigned_to is not None
        assert f"La atiende {AGENT[0]}." in refused.text

    async def test_a_conversation_with_the_bot_cannot_be_taken(
        self, as_agent: httpx.AsyncClient, clean_database: str, clock: MovableClock
    ) -> None:
        [thread_id] = await seed(clean_database, Conversation(PHONE, [student("hola", 1)], clock.now))
        refused = await post(as_agent, f"/console/conversations/{thread_id}/take")
        assert refused.status_code == 409
        assert "El asistente atiende esta conversación" in refused.text

    async def test_an_empty_reply_is_refused_and_sends_nothing(
        self, as_agent: httpx.AsyncClient, clean_database: str, clock: MovableClock
    ) -> None:
        thread_id = await waiting(clean_database, clock)
        refused = await post(as_agent, f"/console/conversations/{thread_id}/reply", text="   ")
        assert refused.status_code == 422
        assert "Escribe la respuesta antes de enviarla." in refused.text
        assert len((await stored(clean_database, thread_id))[1]) == 2
        assert await jobs(clean_database) == []

    async def test_past_the_window_without_a_fallback_the_reply_is_refused(
        self, as_agent: httpx.AsyncClient, clean_database: str, clock: MovableClock
    ) -> None:
        thread_id = await waiting(clean_database, clock, last_inbound_minutes_ago=25 * 60)
        page = await as_agent.get(f"/console/conversations/{thread_id}")
        assert "no se puede enviar" in page.text
        assert re.search(r"<textarea[^>]*disabled", page.text)
        refused = await post(as_agent, f"/console/conversations/{thread_id}/reply", text="Hola")
        assert refused.status_code == 409
        assert "no se envió" in refused.text
        assert "Hola</textarea>" in refused.text
        assert len((await stored(clean_database, thread_id))[1]) == 2

    async def test_a_number_that_never_wrote_over_whatsapp_has_no_channel(
        self, as_agent: httpx.AsyncClient, clean_database: str, clock: MovableClock
    ) -> None:
        thread_id = await waiting(clean_database, clock, channel=None)
        page = text_of((await as_agent.get(f"/console/conversations/{thread_id}")).text)
        assert "Este número nunca escribió por WhatsApp" in page
        refused = await post(as_agent, f"/console/conversations/{thread_id}/reply", text="Hola")
        assert refused.status_code == 409
        assert len((await stored(clean_database, thread_id))[1]) == 2


@pytest.fixture
async def with_template(
    make_client: Callable[..., Any], make_settings: Callable[..., Settings], clock: MovableClock, accounts: None
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(reengage_fallback=ReengageFallback.template, whatsapp_reengage_template="seguimiento")
    async with make_client(settings, clock) as client:
        assert (await sign_in(client, *AGENT)).status_code == 303
        yield client


class TestPastTheWindowWithAFallback:
    async def test_the_reply_goes_as_a_template(
        self, with_template: httpx.AsyncClient, clean_database: str, clock: MovableClock
    ) -> None:
        thread_id = await waiting(clean_database, clock, last_inbound_minutes_ago=25 * 60)
        page = text_of((await with_template.get(f"/console/conversations/{thread_id}")).text)
        assert "La ventana de 24 horas se cerró: se enviará como plantilla." in page
        sent = await post(with_template, f"/console/conversations/{thread_id}/reply", text="Hola")
        assert sent.status_code == 303
        assert (await stored(clean_database, thread_id))[1][-1].content == "Hola"


def results(page: str) -> list[str]:
    """The phones listed, in order."""
    return re.findall(r'<span class="phone">(\+\d+)</span>', page.split('id="results-title"', 1)[1])


@pytest.fixture
async def many(clean_database: str, clock: MovableClock) -> None:
    now = clock.now
    await seed(
        clean_database,
        Conversation(
            "+525511111111",
            [student("necesito mi constancia de estudios", 30), bot("Pídela en ventanilla.", 29, rated=False)],
            now,
            name="Lucía Pérez",
            external_id="A01234",
            updated_minutes_ago=29,
        ),
        Conversation(
            "+525522222222",
            [student("¿cuánto debo de colegiatura?", 20), bot("Debes $1,500, como le dije a Lucía.", 19, rated=True)],
            now,
            10,
            name="Mario Gómez",
            external_id="A05678",
            updated_minutes_ago=19,
        ),
        Conversation(
            "+525533333333",
            [student("hola", 3 * 24 * 60)],
            now,
            name="Sofía Ruiz",
            channel=None,
            updated_minutes_ago=3 * 24 * 60,
        ),
    )


class TestSearch:
    @pytest.mark.parametrize(
        ("q", "found"),
        [
            # The most recently active first.
            ("", ["+525522222222", "+525511111111", "+525533333333"]),
            ("55 2222 2222", ["+525522222222"]),
            ("+52 55 3333 3333", ["+525533333333"]),
            # Her name on record, and in another conversation's words.
            ("lucía", ["+525522222222", "+525511111111"]),
            ("a05678", ["+525522222222"]),
            ("constancia", ["+525511111111"]),
            ("colegiatura debo", ["+525522222222"]),
            ("ventanilla", ["+525511111111"]),
            ("inexistente", []),
            ('"constancia" OR NEAR(', []),
            ("l'école'); DELETE FROM threads; --", []),
        ],
    )
    async def test_by_phone_name_id_or_words(
        self, as_agent: httpx.AsyncClient, many: None, q: str, found: list[str]
    ) -> None:
        page = await as_agent.get("/console/conversations", params={"q": q})
        assert page.status_code == 200
        assert results(page.text) == found

    async def test_filters_by_status_channel_dates_and_answers_rated_no(
        self, as_agent: httpx.AsyncClient, many: None, clock: MovableClock
    ) -> None:
        async def found(**params: str) -> list[str]:
            return results((await as_agent.get("/console/conversations", params=params)).text)

        yesterday = (clock.now - timedelta(days=1)).date().isoformat()
        two_days_ago = (clock.now - timedelta(days=2)).date().isoformat()
        assert await found(status="handoff") == ["+525522222222"]
        assert await found(status="active") == ["+525511111111", "+525533333333"]
        assert await found(channel="whatsapp") == ["+525522222222", "+525511111111"]
        assert await found(since=yesterday) == ["+525522222222", "+525511111111"]
        assert await found(until=two_days_ago) == ["+525533333333"]
        assert await found(since=two_days_ago, until=two_days_ago) == []
        assert await found(rated_no="1") == ["+525511111111"]
        assert await found(rated_no="1", status="handoff") == []

    async def test_a_bad_filter_is_a_clear_error(self, as_agent: httpx.AsyncClient, many: None) -> None:
        for params in ({"since": "ayer"}, {"status": "closed"}, {"channel": "fax"}):
            page = await as_agent.get("/console/conversations", params=params)
            assert page.status_code == 422
            assert "Alguno de los filtros no es válido" in page.text
        assert (await as_agent.get("/console/conversations", params={"page": "0"})).status_code == 422
        assert (await as_agent.get("/console/conversations", params={"page": "401"})).status_code == 422
        assert (await as_agent.get("/console/conversations", params={"q": "x" * 201})).status_code == 422

    async def test_pages_of_twenty_five(
        self, as_agent: httpx.AsyncClient, clean_database: str, clock: MovableClock
    ) -> None:
        await seed(
            clean_database,
            *[
                Conversation(f"+5255100000{n:02d}", [student("hola", n)], clock.now, updated_minutes_ago=n)
                for n in range(30)
            ],
        )
        first = await as_agent.get("/console/conversations")
        assert len(results(first.text)) == 25
        assert 'rel="next"' in first.text
        second = await as_agent.get("/console/conversations", params={"page": "2"})
        assert results(second.text) == [f"+5255100000{n:02d}" for n in range(25, 30)]
        assert 'rel="next"' not in second.text
        assert 'rel="prev"' in second.text


class TestSearchAFrequentWord:
    async def test_the_newest_conversations_holding_it_come_first(
        self, as_agent: httpx.AsyncClient, clean_database: str, clock: MovableClock
    ) -> None:
        # In more messages than the repository's FREQUENT: PostgreSQL walks the newest threads for it.
        said = [student("inscripción", 30 + n) for n in range(10)]
        await seed(
            clean_database,
            *[
                Conversation(
                    f"+52551{n:07d}", said if n % 3 else [student("hola", 30)], clock.now, updated_minutes_ago=n
                )
                for n in range(300)
            ],
        )
        first = results((await as_agent.get("/console/conversations", params={"q": "inscripción"})).text)
        assert first == [f"+52551{n:07d}" for n in range(300) if n % 3][:25]
        deep = results((await as_agent.get("/console/conversations", params={"q": "inscripción", "page": "9"})).text)
        assert deep == [f"+52551{n:07d}" for n in range(300) if n % 3][200:225]
