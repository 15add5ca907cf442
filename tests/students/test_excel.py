"""Excel (.xlsx) student lists: the first sheet, its first row the header, lines as Excel numbers them."""

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.errors import InvalidInput
from bedel.students.models import Student
from bedel.students.schemas import RowError
from bedel.students.service import import_students
from tests.students.workbooks import workbook

HEADER = ["Matrícula", "Nombre", "Celular", "Saldo Pendiente", "Fecha Límite de Pago", "Promedio"]


async def students(session: AsyncSession) -> dict[str, Student]:
    rows = await session.scalars(select(Student).execution_options(populate_existing=True))
    return {student.phone: student for student in rows}


class TestWorkbook:
    async def test_rows_load_with_their_types_and_a_bad_row_is_reported_by_its_excel_line(
        self, session: AsyncSession
    ) -> None:
        data = workbook(
            [
                HEADER,
                ["A001", "Ana López", "+52 55 1234 5678", 4500.5, dt.datetime(2027, 2, 10), 9.2],
                ["A002", "Beto Ruiz", 5587654321, 0, dt.date(2027, 3, 1), 8],
                [None, None, None, None, None, None],
                ["A003", "Carla Gómez", "no tengo", 100, None, 7.5],
            ]
        )

        report = await import_students(session, data, "alumnos.xlsx")

        assert (report.created, report.updated) == (2, 0)
        assert report.errors == [
            RowError(
                line=5,
                code="invalid_phone",
                message="invalid phone 'no tengo': a phone may only hold digits, spaces, dashes, dots, "
                "parentheses and a leading +",
                value="no tengo",
            )
        ]
        loaded = await students(session)
        ana, beto = loaded["+525512345678"], loaded["+525587654321"]
        assert (ana.external_id, ana.name) == ("A001", "Ana López")
        assert ana.attributes == {"Saldo Pendiente": 4500.5, "Fecha Límite de Pago": "2027-02-10", "Promedio": 9.2}
        assert beto.attributes["Fecha Límite de Pago"] == "2027-03-01"

    async def test_the_report_says_how_each_column_was_understood(self, session: AsyncSession) -> None:
        data = workbook([[*HEADER, "Turno"], ["A001", "Ana", "5512345678", 10, dt.date(2027, 2, 10), 9, "Matutino"]])

        report = await import_students(session, data, "alumnos.xlsx")

        understood = {reading.column: reading.field or reading.concept for reading in report.columns}
        assert understood == {
            "Matrícula": "external_id",
            "Nombre": "name",
            "Celular": "phone",
            "Saldo Pendiente": "balance",
            "Fecha Límite de Pago": "payment_due",
            "Promedio": "gpa",
            "Turno": None,
        }
        assert len(report.warnings) == 1 and "column 'Turno' was not understood" in report.warnings[0]

    async def test_only_the_first_sheet_is_read(self, session: AsyncSession) -> None:
        data = workbook([["telefono", "nombre"], ["5512345678", "Ana"]], sheets=3)

        report = await import_students(session, data, "alumnos.xlsx")

        assert report.created == 1

    async def test_columns_without_a_header_are_left_out(self, session: AsyncSession) -> None:
        data = workbook([["telefono", "nombre", None], ["5512345678", "Ana", "nota suelta"]])

        await import_students(session, data, "alumnos.xlsx")

        assert (await students(session))["+525512345678"].attributes == {}


class TestUnreadableWorkbook:
    @pytest.mark.parametrize(
        ("rows", "message"),
        [
            ([], "first sheet of the workbook is empty"),
            ([["nombre", "correo"], ["Ana", "a@x.mx"]], "no phone column among 'nombre', 'correo'"),
            ([["telefono", "telefono"], ["5512345678", "1"]], "names the column 'telefono' twice"),
            ([["telefono"]], "no students"),
        ],
    )
    async def test_is_refused_and_nothing_loads(
        self, session: AsyncSession, rows: list[list[str]], message: str
    ) -> None:
        with pytest.raises(InvalidInput, match=message):
            await import_students(session, workbook(rows), "alumnos.xlsx")

        assert await students(session) == {}
