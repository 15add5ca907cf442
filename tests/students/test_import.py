import json
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bedel.errors import InvalidInput
from bedel.students.models import Student
from bedel.students.schemas import ImportReport, RowError
from bedel.students.service import import_students


async def all_students(session: AsyncSession) -> dict[str, Student]:
    # Imports write around the identity map: reload what an earlier step may have loaded.
    rows = await session.scalars(select(Student).execution_options(populate_existing=True))
    return {student.phone: student for student in rows}


async def import_text(session: AsyncSession, text: str, filename: str = "alumnos.csv") -> ImportReport:
    return await import_students(session, text.encode(), filename)


def lines(*rows: str) -> str:
    return "\n".join(rows) + "\n"


class TestCsv:
    async def test_comma_separated_file_loads_every_row(self, session: AsyncSession) -> None:
        report = await import_text(
            session,
            lines("telefono,nombre,correo,matricula", "+52 55 1234 5678,Ana López,ana@example.mx,A001"),
        )

        assert (report.created, report.updated, report.errors) == (1, 0, [])
        ana = (await all_students(session))["+525512345678"]
        assert (ana.name, ana.email, ana.external_id, ana.attributes) == ("Ana López", "ana@example.mx", "A001", {})

    async def test_semicolon_separated_excel_export_with_bom(self, session: AsyncSession) -> None:
        text = "\ufeff" + lines(
            "Matrícula;Nombre del alumno;Teléfono;Correo electrónico;Adeudo", "A1;Ana;55-1234-5678;a@x.mx;4,500"
        )

        report = await import_text(session, text)

        assert report.created == 1
        ana = (await all_students(session))["+525512345678"]
        assert (ana.name, ana.external_id, ana.email) == ("Ana", "A1", "a@x.mx")
        assert ana.attributes == {"Adeudo": "4,500"}

    async def test_english_headers_are_recognised(self, session: AsyncSession) -> None:
        await import_text(
            session, lines("Student ID,Full Name,E-mail,Phone Number", "S-9,Ann Lee,ann@x.edu,+1 415 555 0101")
        )

        ann = (await all_students(session))["+14155550101"]
        assert (ann.name, ann.email, ann.external_id) == ("Ann Lee", "ann@x.edu", "S-9")

    async def test_other_columns_are_attributes_under_their_trimmed_header(self, session: AsyncSession) -> None:
        await import_text(
            session,
            lines(" telefono , Saldo Pendiente ,fechaLimite,beca", "5512345678,  1500.50 ,2026-12-15,"),
        )

        student = (await all_students(session))["+525512345678"]
        assert student.attributes == {"Saldo Pendiente": "1500.50", "fechaLimite": "2026-12-15"}

    async def test_quoted_multiline_cell_keeps_physical_line_numbers(self, session: AsyncSession) -> None:
        text = lines(
            "telefono,nombre,notas",
            '5512345678,Ana,"primera línea',
            'segunda línea"',
            "no es teléfono,Beto,",
            "5587654321,Carla,",
        )

        report = await import_text(session, text)

        assert report.created == 2
        assert [error.line for error in report.errors] == [4]
        ana = (await all_students(session))["+525512345678"]
        assert ana.attributes == {"notas": "primera línea\nsegunda línea"}

    async def test_windows_line_endings_count_one_line_each(self, session: AsyncSession) -> None:
        text = 'telefono;notas\r\n5512345678;"a\r\nb"\r\nx;y\r\n5587654321;\r\n'

        report = await import_text(session, text)

        assert report.created == 2
        assert [error.line for error in report.errors] == [4]

    async def test_tab_separated_file_loads(self, session: AsyncSession) -> None:
        report = await import_text(session, lines("telefono\tnombre", "5512345678\tAna"))

        assert report.created == 1
        assert (await all_students(session))["+525512345678"].name == "Ana"

    async def test_blank_lines_are_skipped_but_counted(self, session: AsyncSession) -> None:
        report = await import_text(session, lines("telefono,nombre", "", "5512345678,Ana", ",", "x,Beto"))

        assert report.created == 1
        assert [(error.line, error.message) for error in report.errors] == [
            (5, "invalid phone 'x': a phone may only hold digits, spaces, dashes, dots, parentheses and a leading +")
        ]

    async def test_row_with_more_cells_than_the_header_is_reported(self, session: AsyncSession) -> None:
        report = await import_text(session, lines("telefono,nombre", "5512345678,Ana,sobra", "5587654321,Beto,,"))

        assert report.created == 1
        assert report.errors == [RowError(line=2, code="cell_count", message="3 cells, but the header names 2 columns")]


class TestJson:
    async def test_array_of_objects_keeps_json_types(self, session: AsyncSession) -> None:
        payload = [
            {"phone": "+52 55 1234 5678", "nombre": "Ana", "adeudo": 4500, "promedio": 9.5, "beca": True, "vacio": ""},
            {"celular": 5587654321, "matricula": 20231234, "materias": ["Álgebra", "Física"], "nada": None},
        ]

        report = await import_text(session, json.dumps(payload), "alumnos.json")

        assert (report.created, report.updated, report.errors) == (2, 0, [])
        students = await all_students(session)
        assert students["+525512345678"].attributes == {"adeudo": 4500, "promedio": 9.5, "beca": True}
        beto = students["+525587654321"]
        assert beto.external_id == "20231234"
        assert beto.attributes == {"materias": ["Álgebra", "Física"]}

    async def test_whole_number_floats_are_read_as_integers(self, session: AsyncSession) -> None:
        payload = [{"telefono": 5512345678.0, "matricula": 2023001.0, "promedio": 9.0}]

        await import_text(session, json.dumps(payload), "alumnos.json")

        student = (await all_students(session))["+525512345678"]
        assert (student.external_id, student.attributes) == ("2023001", {"promedio": 9.0})

    async def test_text_a_database_cannot_store_is_a_bad_row(self, session: AsyncSession) -> None:
        text = '[{"telefono": "5512345678", "nota": "a\\u0000b"}, {"telefono": "5587654321", "x": ["\\ud800"]}]'

        report = await import_text(session, text, "alumnos.json")

        assert [(error.item, error.message) for error in report.errors] == [
            (1, "holds a NUL character or a lone surrogate escape, which cannot be stored"),
            (2, "holds a NUL character or a lone surrogate escape, which cannot be stored"),
        ]

    async def test_bad_items_are_reported_by_position(self, session: AsyncSession) -> None:
        payload = [{"telefono": "5512345678"}, "texto", {"nombre": "Sin teléfono"}, {"telefono": "123"}]

        report = await import_text(session, json.dumps(payload), "alumnos.json")

        assert report.created == 1
        assert [(error.item, error.line) for error in report.errors] == [(2, None), (3, None), (4, None)]
        assert [error.location for error in report.errors] == ["item 2", "item 3", "item 4"]
        assert report.errors[0].message == "is not a JSON object"
        assert report.errors[1].message == "no phone"

    @pytest.mark.parametrize("filename", ["alumnos.jsonl", "alumnos.ndjson"])
    async def test_json_lines_report_bad_lines(self, session: AsyncSession, filename: str) -> None:
        text = lines('{"telefono": "5512345678", "adeudo": 10}', "", "{roto", "[1, 2]", '{"telefono": "5587654321"}')

        report = await import_text(session, text, filename)

        assert report.created == 2
        assert [error.line for error in report.errors] == [3, 4]
        assert report.errors[0].message.startswith("not valid JSON")
        assert (await all_students(session))["+525512345678"].attributes == {"adeudo": 10}


class TestBadRows:
    async def test_bad_rows_are_reported_by_line_while_good_rows_load(self, session: AsyncSession) -> None:
        text = lines(
            "telefono,nombre",
            "5512345678,Ana",
            ",Sin teléfono",
            "55-ABC-1234,Letras",
            "1234,Corto",
            "5587654321,Beto",
        )

        report = await import_text(session, text)

        assert (report.created, report.updated) == (2, 0)
        assert [error.line for error in report.errors] == [3, 4, 5]
        assert report.errors[0].message == "no phone"
        assert "invalid phone '55-ABC-1234'" in report.errors[1].message
        assert "between 8 and 15 digits" in report.errors[2].message
        assert set(await all_students(session)) == {"+525512345678", "+525587654321"}

    async def test_too_long_name_is_reported(self, session: AsyncSession) -> None:
        report = await import_text(session, lines("telefono,nombre", f"5512345678,{'x' * 201}"))

        assert report.errors == [
            RowError(line=2, code="too_long", message="name is longer than 200 characters", value="name")
        ]
        assert await all_students(session) == {}

    async def test_repeated_phone_keeps_the_last_row(self, session: AsyncSession) -> None:
        text = lines("telefono,nombre", "+52 1 55 6677 88,Primero", "5512345678,Otra", "+52 55667788,Último")

        report = await import_text(session, text)

        assert (report.created, report.updated) == (2, 0)
        assert report.errors == [
            RowError(
                line=2,
                code="repeated_phone",
                message="phone +5255667788 appears again on line 4, which replaces this row",
                value="+5255667788",
            )
        ]
        assert (await all_students(session))["+5255667788"].name == "Último"


class TestReimport:
    async def test_reimport_updates_by_phone(self, session: AsyncSession) -> None:
        await import_text(
            session, lines("telefono,nombre,adeudo,beca", "5512345678,Ana,4500,50%", "5587654321,Beto,0,")
        )

        report = await import_text(
            session, lines("telefono,nombre,adeudo", "55 1234 5678,Ana María,0", "5500001111,Carla,1")
        )

        assert (report.created, report.updated) == (1, 1)
        students = await all_students(session)
        assert len(students) == 3
        ana = students["+525512345678"]
        assert (ana.name, ana.attributes) == ("Ana María", {"adeudo": "0"})

    async def test_whatsapp_mobile_prefix_finds_the_school_record(self, session: AsyncSession) -> None:
        await import_text(session, lines("telefono,nombre", "+52 55667788,Diego"))

        report = await import_text(session, lines("telefono,nombre", "+52155667788,Diego H."))

        assert (report.created, report.updated) == (0, 1)
        assert [student.name for student in (await all_students(session)).values()] == ["Diego H."]

    async def test_demo_file_loads_cleanly(self, session: AsyncSession, demo_students: Path) -> None:
        report = await import_students(session, demo_students.read_bytes(), demo_students.name)

        assert (report.created, report.updated, report.errors) == (8, 0, [])
        diego = (await all_students(session))["+5255667788"]
        assert diego.attributes["carrera"] == "Arquitectura"


class TestWholeFileErrors:
    @pytest.mark.parametrize(
        ("data", "filename", "message"),
        [
            ("telefono,nombre\n5512345678,José\n".encode("latin-1"), "a.csv", "not UTF-8"),
            ("telefono,nombre\n".encode("utf-16"), "a.csv", "UTF-16"),
            (b"", "a.csv", "empty"),
            (b" \n\n", "a.jsonl", "empty"),
            (b"telefono,nombre\n", "a.csv", "no students"),
            (b"nombre,correo\nAna,a@x.mx\n", "a.csv", "no phone column among 'nombre', 'correo'"),
            (
                b"telefono,celular\n5512345678,5587654321\n",
                "a.csv",
                "'telefono' and 'celular' are both read as the phone",
            ),
            (b"telefono,nombre,telefono\n5512345678,Ana,1\n", "a.csv", "names the column 'telefono' twice"),
            (b'[{"telefono": "5512345678"', "a.json", "not valid JSON"),
            (b'{"telefono": "5512345678"}\n{"telefono": "5587654321"}\n', "a.json", "name the file .jsonl"),
            (b'{"telefono": "5512345678"}', "a.json", "must hold an array"),
            (b'[{"telefono": NaN}]', "a.json", "NaN is not a JSON value"),
            (b"[]", "a.json", "no students"),
            (b'[{"nombre": "Ana"}]', "a.json", "no object in the file has a phone"),
            (b"[1, 2]", "a.json", "no object in the file has a phone"),
            (b'{"nombre": "Ana"}\n', "a.jsonl", "no object in the file has a phone"),
            (b"telefono\n5512345678\n", "alumnos.ods", "unknown file format '.*ods': use .csv, .xlsx"),
            (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "alumnos.xls", "Excel 97-2003"),
            (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "alumnos.csv", "Excel 97-2003"),
            (b"PK\x03\x04 not really a workbook", "alumnos.csv", "name it .xlsx"),
            (b"PK\x03\x04 not really a workbook", "alumnos.xlsx", "not an Excel workbook"),
            (b"telefono\n5512345678\n", "alumnos.xlsx", "not an Excel workbook"),
        ],
    )
    async def test_file_is_rejected_and_nothing_changes(
        self, session: AsyncSession, data: bytes, filename: str, message: str
    ) -> None:
        await import_text(session, lines("telefono,nombre", "5512345678,Ana"))

        with pytest.raises(InvalidInput, match=message):
            await import_students(session, data, filename)

        students = await all_students(session)
        assert [(student.phone, student.name) for student in students.values()] == [("+525512345678", "Ana")]


class TestLargeFiles:
    async def test_rows_are_written_in_batches(self, session: AsyncSession) -> None:
        header = "telefono,nombre,adeudo"
        text = lines(header, *(f"+52 55 {10_000_000 + n},Alumno {n},{n}" for n in range(2_000)))
        statements: list[str] = []

        def listener(*args: object) -> None:
            statements.append(str(args[2]))

        assert isinstance(session.bind, AsyncEngine)
        engine = session.bind.sync_engine
        event.listen(engine, "before_cursor_execute", listener)
        try:
            report = await import_text(session, text)
        finally:
            event.remove(engine, "before_cursor_execute", listener)

        assert report.created == 2_000
        # Per batch of 500: the students, then their lookup keys replaced (one delete, one insert).
        assert len(statements) <= 12
        assert await session.scalar(select(func.count()).select_from(Student)) == 2_000
