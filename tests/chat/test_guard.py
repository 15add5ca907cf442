"""The output guard against real students in a real database (SQLite and PostgreSQL)."""

import asyncio
import base64
import uuid
from collections.abc import Sequence

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from bedel import migrate
from bedel.chat.guard import Guarded, SentenceBuffer, withhold_others
from bedel.db import create_engine, create_sessionmaker, utcnow
from bedel.students.models import Student
from bedel.students.repository import StudentRepository
from bedel.students.schemas import StudentUpdate
from bedel.students.service import delete_student, import_students, replace_student

CALLER = "+525512345678"
STUDENTS = (
    "matricula,nombre,telefono,correo,curp,adeudo\n"
    "A2024-0001,Lucía Pérez Ramírez,+52 55 1234 5678,lucia.perez@alumnos.edu.mx,PERL050101MDFRZC01,4500\n"
    "A2024-0002,Marco Ruiz Salinas,+52 55 8765 4321,marco.ruiz@alumnos.edu.mx,RUSM040202HDFZLR02,99999\n"
)
HIDDEN = "[dato reservado]"


@pytest.fixture
async def students(session: AsyncSession) -> AsyncSession:
    await import_students(session, STUDENTS.encode(), "alumnos.csv")
    return session


async def guard(session: AsyncSession, text: str, caller: str | None = CALLER) -> Guarded:
    async def lookup(keys: Sequence[str]) -> list[tuple[str, str, str]]:
        return await StudentRepository.from_session(session).owners_of_keys(keys)

    return await withhold_others(text, lookup, caller=caller, placeholder=HIDDEN)


class TestAnotherStudentsIdentifiers:
    @pytest.mark.parametrize(
        ("text", "kind"),
        [
            ("Su número es +52 1 55 8765 4321.", "phone"),
            ("Su número es (55) 8765-4321.", "phone"),
            ("Su número es 5587654321.", "phone"),
            ("Escríbele a Marco.Ruiz@alumnos.edu.mx si quieres.", "email"),
            ("Su matrícula es a2024-0002.", "matricula"),
            ("Su CURP: RUSM040202HDFZLR02.", "curp"),
            ("marco ruiz salinas debe $99,999.", "name"),
            ("MARCO RUÍZ SALINAS tiene promedio 6.1.", "name"),
        ],
    )
    async def test_the_sentence_holding_one_is_withheld_and_the_rest_kept(
        self, students: AsyncSession, text: str, kind: str
    ) -> None:
        guarded = await guard(students, f"Hola Lucía. {text} ¿Algo más?")

        assert guarded.text == f"Hola Lucía. {HIDDEN} ¿Algo más?"
        assert dict(guarded.withheld) == {kind: 1}

    @pytest.mark.parametrize(
        "text",
        [
            "Marco Ruiz Salinas: 5 5 8 7 6 5 4 3 2 1",
            "El alumno es M4rc0 Ru1z S4l1n4s y debe mucho",
            "El alumno es M a r c o  R u i z  S a l i n a s",
            "El alumno es M a r c o R u i z S a l i n a s",
            "Dato: " + base64.b64encode(b"Marco Ruiz Salinas, 99999").decode(),
            "Dato: " + base64.b64encode(b"+52 55 8765 4321").decode(),
        ],
    )
    async def test_a_disguised_one_is_withheld(self, students: AsyncSession, text: str) -> None:
        guarded = await guard(students, text)

        assert guarded.text == HIDDEN
        assert guarded.withheld

    async def test_the_callers_own_identifiers_stay(self, students: AsyncSession) -> None:
        text = (
            "Lucía Pérez Ramírez, tu matrícula A2024-0001, tu correo lucia.perez@alumnos.edu.mx, "
            "tu teléfono 55 1234 5678 y tu CURP PERL050101MDFRZC01: debes $4,500."
        )

        guarded = await guard(students, text)

        assert guarded == Guarded(text, guarded.withheld)
        assert not guarded.withheld

    async def test_an_unknown_caller_gets_every_students_withheld(self, students: AsyncSession) -> None:
        guarded = await guard(students, "Lucía Pérez Ramírez debe $4,500.", caller="+14155550100")

        assert guarded.text == HIDDEN
        assert dict(guarded.withheld) == {"name": 1}

    async def test_part_of_a_name_amounts_and_the_schools_own_numbers_stay(self, students: AsyncSession) -> None:
        text = "Marco, la colegiatura es de $99,999 y la caja atiende al 55 5000 1000. Pregunta por Ruiz."

        guarded = await guard(students, text)

        assert guarded.text == text

    async def test_a_line_of_a_list_is_withheld_alone(self, students: AsyncSession) -> None:
        text = "Adeudos:\n- Lucía Pérez Ramírez: 4500\n- Marco Ruiz Salinas: 99999\nFin"

        guarded = await guard(students, text)

        assert guarded.text == f"Adeudos:\n- Lucía Pérez Ramírez: 4500\n{HIDDEN}\nFin"


class TestKeysFollowTheRecords:
    async def test_an_edited_record_is_guarded_by_its_new_values(self, students: AsyncSession) -> None:
        update = StudentUpdate(name="Marcos Ruiz Soto", email="mrs@alumnos.edu.mx", external_id="B2025-0009")
        await replace_student(students, "+52 55 8765 4321", update)

        old = await guard(students, "Marco Ruiz Salinas, marco.ruiz@alumnos.edu.mx, A2024-0002.")
        new = await guard(students, "Marcos Ruiz Soto.")

        assert old.text == "Marco Ruiz Salinas, marco.ruiz@alumnos.edu.mx, A2024-0002."
        assert new.text == HIDDEN

    async def test_a_reimported_record_is_guarded_by_its_new_values(self, students: AsyncSession) -> None:
        changed = "matricula,nombre,telefono\nA2024-0002,Mario Ruiz Salinas,+52 55 8765 4321\n"
        await import_students(students, changed.encode(), "alumnos.csv")

        assert (await guard(students, "Marco Ruiz Salinas.")).text == "Marco Ruiz Salinas."
        assert (await guard(students, "Mario Ruiz Salinas.")).text == HIDDEN

    async def test_a_deleted_student_leaves_no_key(self, students: AsyncSession) -> None:
        await delete_student(students, "+52 55 8765 4321")

        guarded = await guard(students, "Marco Ruiz Salinas, 55 8765 4321.")

        assert guarded.text == "Marco Ruiz Salinas, 55 8765 4321."


class TestUpgrade:
    async def test_students_stored_before_the_guard_get_their_keys(self, clean_database: str) -> None:
        await asyncio.to_thread(migrate.downgrade, clean_database, "0010")
        try:
            engine = create_engine(clean_database)
            async with engine.begin() as connection:
                now = utcnow()
                row = {"phone": "+525587654321", "name": "Marco Ruiz Salinas", "external_id": "A2024-0002"}
                values: dict[str, object] = {**row, "id": uuid.uuid4(), "email": None, "attributes": {}}
                await connection.execute(insert(Student), [{**values, "created_at": now, "updated_at": now}])
            await engine.dispose()
        finally:
            await asyncio.to_thread(migrate.upgrade, clean_database)

        engine = create_engine(clean_database)
        async with create_sessionmaker(engine)() as session:
            guarded = await guard(session, "Marco Ruiz Salinas. Matrícula A2024-0002. Tel 55 8765 4321.")
        await engine.dispose()

        assert guarded.text == f"{HIDDEN} {HIDDEN} {HIDDEN}"
        assert dict(guarded.withheld) == {"name": 1, "matricula": 1, "phone": 1}


class TestAStreamedAnswer:
    @pytest.mark.parametrize(
        "text",
        [
            "Hola. Su correo es m a r c o . r u i z @ a l u m n o s . e d u . m x\nNada más.",
            "Hola. Su teléfono: 55 8765\n4321. Llámale.",
            "Hola. Su teléfono: 55 8765. 4321. Llámale.",
            "Su matrícula es A2024-0002.\nSu teléfono es 55 8765 4321.",
        ],
    )
    async def test_withholds_what_the_whole_answer_withholds_however_it_is_cut(
        self, students: AsyncSession, text: str
    ) -> None:
        whole = await guard(students, text)
        assert whole.withheld

        for size in (1, 3, 7, len(text)):
            buffer, sent = SentenceBuffer(), []
            for piece in [text[i : i + size] for i in range(0, len(text), size)] + [None]:
                if chunk := buffer.feed(piece) if piece is not None else buffer.flush():
                    sent.append((await guard(students, chunk)).text)
            assert "".join(sent) == whole.text, size


class TestSentenceBuffer:
    def test_only_whole_sentences_leave_until_the_end(self) -> None:
        buffer = SentenceBuffer()

        pieces = [buffer.feed(piece) for piece in ["Hola Lu", "cía. Tu saldo", " es $4,500.", "\nAdiós"]]

        # "$4,500." may go on ("$4,500.00"): a full stop ends a sentence once a space or a line follows.
        assert pieces == ["", "Hola Lucía.", "", " Tu saldo es $4,500.\n"]
        assert buffer.flush() == "Adiós"

    def test_a_line_or_sentence_an_identifier_may_run_across_is_held_back(self) -> None:
        buffer = SentenceBuffer()

        pieces = [buffer.feed(piece) for piece in ["Debes $4,500.\n", "- Colegiatura", " 55 87. ", "65 4321.\nFin"]]

        # "4,500." then "- Col...": no digit goes on; "55 87. " may go on ("55 87. 65 4321").
        assert pieces == ["", "Debes $4,500.\n", "", "- Colegiatura 55 87. 65 4321.\n"]
        assert buffer.flush() == "Fin"
