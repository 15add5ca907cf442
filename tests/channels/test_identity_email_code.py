"""Verifying a username-only WhatsApp user with a one-time code emailed to the address on their record."""

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select

from bedel.config import Settings
from bedel.db import create_engine, create_sessionmaker
from bedel.identities.models import ChannelIdentity, IdentityKind
from bedel.texts.catalog import texts_for
from tests.channels.test_identity import (
    BSUID,
    PHONE,
    Student,
    graph_answer,
    identities,
    thread_messages,
    with_students,
)
from tests.channels.test_whatsapp import all_jobs_finished
from tests.channels.vendors import CHANNEL_SETTINGS, GRAPH_MESSAGES_URL
from tests.clocks import FakeClock
from tests.mailbox import Mailbox
from tests.polling import eventually
from tests.ports import free_port

ES = texts_for("es")
ASK_STUDENT_ID = ES.ask_student_id
CODE_EXPIRED = ES.code_expired
CODE_NOT_SENT = ES.code_not_sent
CODE_SENT = ES.code_sent
NOT_VERIFIED = ES.not_verified

# Lucía has an email on record; Mario does not.
STUDENTS = (
    "matricula,nombre,telefono,adeudo,correo\n"
    "A001,Lucía Pérez,+52 55 1234 5678,4500,lucia@alumnos.example.edu\n"
    "A002,Mario Soto,+52 55 8765 4321,1200,\n"
)
SENT = CODE_SENT.format(minutes=10)


@pytest.fixture
def mailbox(smtp_server: tuple[Mailbox, int]) -> Mailbox:
    return smtp_server[0]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_code_client(
    make_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    smtp_server: tuple[Mailbox, int],
    clock: FakeClock,
) -> Any:
    def open_client(smtp_port: int = smtp_server[1], **overrides: Any) -> Any:
        settings = make_settings(
            **CHANNEL_SETTINGS,
            identity_verification_field="email_code",
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
            smtp_from="Universidad <avisos@example.edu>",
            smtp_security="none",
            **overrides,
        )
        return with_students(make_client(settings, clock), STUDENTS)

    return open_client


@pytest.fixture
async def code_client(make_code_client: Any) -> Any:
    async with make_code_client() as client:
        yield client


@pytest.fixture
def graph() -> Any:
    with respx.mock(assert_all_called=False) as router:
        yield router.post(GRAPH_MESSAGES_URL).mock(side_effect=graph_answer)


def code_in_email(mailbox: Mailbox, index: int = -1) -> str:
    body = mailbox.messages[index].get_payload(decode=True)
    assert isinstance(body, bytes)
    (code,) = re.findall(r"\b\d{6}\b", body.decode())
    return str(code)


async def identity_row(database_url: str) -> ChannelIdentity:
    engine = create_engine(database_url)
    async with create_sessionmaker(engine)() as session:
        row = await session.scalar(select(ChannelIdentity).where(ChannelIdentity.kind == IdentityKind.bsuid))
    await engine.dispose()
    assert row is not None
    return row


class TestEmailCode:
    async def test_the_code_emailed_verifies_and_then_the_student_gets_their_balance(
        self, code_client: httpx.AsyncClient, graph: respx.Route, mailbox: Mailbox, clean_database: str
    ) -> None:
        lucia = Student(code_client, graph)

        assert await lucia.ask("¿cuánto debo?") == ASK_STUDENT_ID
        assert await lucia.ask("A001") == SENT
        (sent,) = mailbox.messages
        assert (sent["To"], sent["From"]) == ("lucia@alumnos.example.edu", "Universidad <avisos@example.edu>")
        code = code_in_email(mailbox)
        # Only a hash of the code is kept.
        pending = await identity_row(clean_database)
        assert pending.code_hash is not None and code not in pending.code_hash

        assert "Lucía Pérez" in await lucia.ask(code)
        answer = await lucia.ask("¿cuánto debo?")

        assert "4,500" in answer
        assert (await identities(clean_database))[(IdentityKind.bsuid, BSUID)] == PHONE
        assert await thread_messages(code_client, PHONE) == [("user", "¿cuánto debo?"), ("assistant", answer)]
        assert (await identity_row(clean_database)).code_hash is None

    async def test_an_unknown_id_or_one_without_an_email_gets_the_same_reply_and_no_email(
        self, code_client: httpx.AsyncClient, graph: respx.Route, mailbox: Mailbox, clean_database: str
    ) -> None:
        students = [Student(code_client, graph, f"MX.{n}") for n in range(3)]
        replies = [await student.ask(claim) for student, claim in zip(students, ["Z999", "A002", "A001"], strict=True)]

        assert replies == [SENT, SENT, SENT]
        assert [message["To"] for message in mailbox.messages] == ["lucia@alumnos.example.edu"]
        # Whatever code the first one tries, it fails like a wrong one.
        assert await students[0].ask("123456") == NOT_VERIFIED

    async def test_a_wrong_code_fails_and_the_code_is_spent(
        self, code_client: httpx.AsyncClient, graph: respx.Route, mailbox: Mailbox, clean_database: str
    ) -> None:
        lucia = Student(code_client, graph)
        await lucia.ask("A001")
        right = code_in_email(mailbox)
        wrong = f"{(int(right) + 1) % 1_000_000:06d}"

        assert await lucia.ask(wrong) == NOT_VERIFIED
        await lucia.ask(right)  # now read as a new claim, not as the code

        assert (await identities(clean_database))[(IdentityKind.bsuid, BSUID)] != PHONE
        assert (await identity_row(clean_database)).failed_attempts == 1

    async def test_a_new_id_sends_a_new_code_and_the_old_one_no_longer_works(
        self, code_client: httpx.AsyncClient, graph: respx.Route, mailbox: Mailbox
    ) -> None:
        lucia = Student(code_client, graph)
        await lucia.ask("A001")
        await lucia.ask("A001")
        first, second = code_in_email(mailbox, 0), code_in_email(mailbox, 1)

        assert first != second  # one chance in a million that a new code repeats the old one
        assert await lucia.ask(first) == NOT_VERIFIED
        await lucia.ask("A001")
        assert "Lucía Pérez" in await lucia.ask(code_in_email(mailbox))

    async def test_an_expired_code_fails(
        self,
        code_client: httpx.AsyncClient,
        graph: respx.Route,
        mailbox: Mailbox,
        clock: FakeClock,
        clean_database: str,
    ) -> None:
        lucia = Student(code_client, graph)
        await lucia.ask("A001")
        # The reply's job settles first: a jump of ten minutes would lapse its lease and send it again.
        await eventually(lambda: all_jobs_finished(clean_database))
        clock.advance(10 * 60 + 1)

        assert await lucia.ask(code_in_email(mailbox)) == CODE_EXPIRED
        assert (await identities(clean_database))[(IdentityKind.bsuid, BSUID)] != PHONE
        assert (await identity_row(clean_database)).failed_attempts == 1

    async def test_codes_count_as_attempts_so_emails_stop_at_the_limit(
        self, make_code_client: Any, graph: respx.Route, mailbox: Mailbox
    ) -> None:
        async with make_code_client(identity_verification_attempts=2, identity_verification_cooldown_s=600) as client:
            intruder = Student(client, graph)
            replies = [await intruder.ask("A001") for _ in range(4)]

        assert replies[:2] == [SENT, SENT]
        assert all("10 minutos" in reply for reply in replies[2:])
        assert len(mailbox.messages) == 2

    async def test_an_email_that_cannot_be_sent_gets_a_polite_reply_and_links_nothing(
        self, make_code_client: Any, graph: respx.Route, clean_database: str
    ) -> None:
        async with make_code_client(smtp_port=free_port()) as client:  # nobody listens there
            lucia = Student(client, graph)

            assert await lucia.ask("A001") == CODE_NOT_SENT

        row = await identity_row(clean_database)
        # Nothing linked, nothing pending, and our failure is not counted against the student.
        assert (row.phone != PHONE, row.code_hash, row.failed_attempts) == (True, None, 0)
