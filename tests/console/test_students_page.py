"""The students page (admins): import a list, the columns view, search, view, edit and delete one student."""

import html
import re
from typing import get_args

import httpx

from bedel.console.catalogue import Language, strings
from bedel.students.schemas import RowProblem
from tests.console.accounts import page_token
from tests.students.workbooks import XLSX_TYPE, workbook

PAGE = "/console/students"
ANA = "/console/students/%2B525512345678"


async def upload(admin: httpx.AsyncClient, name: str, data: bytes, content_type: str) -> httpx.Response:
    token = await page_token(admin, PAGE)
    return await admin.post(f"{PAGE}/import", data={"csrf_token": token}, files={"file": (name, data, content_type)})


async def load_two(admin: httpx.AsyncClient) -> None:
    data = workbook(
        [
            ["matricula", "nombre", "telefono", "adeudo", "Turno"],
            ["A001", "Ana Ruiz", "5512345678", 4500, "Matutino"],
            ["B002", "Beto Diaz", "5587654321", 0, None],
        ]
    )
    assert (await upload(admin, "alumnos.xlsx", data, XLSX_TYPE)).status_code == 200


def text_of(page: httpx.Response) -> str:
    """The page's words, without tags, spaces folded."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())


class TestImport:
    async def test_an_excel_file_imports_the_good_rows_and_shows_the_bad_line_and_the_columns(
        self, as_admin: httpx.AsyncClient
    ) -> None:
        data = workbook(
            [
                ["Matrícula", "Nombre", "Celular", "SaldoPendiente", "Turno"],
                ["A001", "Ana Ruiz", "5512345678", 4500, "Matutino"],
                ["A002", "Beto Díaz", "12", 0, "Vespertino"],
                ["A003", "Carla Gómez", "5587654321", 100, None],
            ]
        )

        response = await upload(as_admin, "alumnos.xlsx", data, XLSX_TYPE)

        assert response.status_code == 200
        assert response.headers["hx-push-url"] == PAGE
        page = text_of(response)
        assert "alumnos.xlsx: 2 alumnos nuevos, 0 actualizados, 1 filas sin cargar." in page
        assert "Línea 3 Teléfono no válido: «12» (solo dígitos" in page
        assert "Celular Teléfono" in page
        assert "SaldoPendiente Saldo pendiente balance Números 3" in page
        assert "Turno No se entendió Texto 2" in page
        assert "La columna «Turno» no se entendió (sus valores parecen: texto): se guarda con su propio nombre." in page
        assert (await as_admin.get(ANA)).status_code == 200

    async def test_an_old_excel_file_is_refused_with_how_to_save_it(self, as_admin: httpx.AsyncClient) -> None:
        response = await upload(as_admin, "alumnos.xls", b"\xd0\xcf\x11\xe0", "application/vnd.ms-excel")

        assert response.status_code == 415
        assert "No se cargó alumnos.xls: Excel 97-2003 (.xls) files cannot be read" in text_of(response)
        assert "Todavía no hay alumnos" in text_of(response)

    async def test_a_form_without_a_file_says_so(self, as_admin: httpx.AsyncClient) -> None:
        token = await page_token(as_admin, PAGE)
        response = await as_admin.post(f"{PAGE}/import", data={"csrf_token": token})

        assert response.status_code == 422
        assert "Elige un archivo para cargar." in response.text

    async def test_an_upload_without_its_token_is_refused_and_loads_nothing(self, as_admin: httpx.AsyncClient) -> None:
        response = await as_admin.post(
            f"{PAGE}/import", files={"file": ("alumnos.csv", b"telefono\n5512345678\n", "text/csv")}
        )

        assert response.status_code == 403
        assert (await as_admin.get(ANA)).status_code == 404

    async def test_a_column_read_against_its_values_is_pointed_out(self, as_admin: httpx.AsyncClient) -> None:
        response = await upload(as_admin, "alumnos.csv", b"telefono,adeudo\n5512345678,2027-02-10\n", "text/csv")

        assert "La columna «adeudo» se entiende como «Saldo pendiente», pero sus valores parecen fechas." in text_of(
            response
        )


def test_every_reason_a_row_is_refused_has_words_in_each_language() -> None:
    for language in Language:
        words = strings(language)
        assert [code for code in get_args(RowProblem) if f"students_row_{code}" not in words] == []


class TestColumnsView:
    async def test_shows_what_each_column_of_the_loaded_list_serves(self, as_admin: httpx.AsyncClient) -> None:
        await load_two(as_admin)

        page = text_of(await as_admin.get(f"{PAGE}/fields"))

        assert "2 alumnos; columnas leídas de los 2 cargados más recientemente." in page
        assert "Teléfono 2 Nombre 2 Correo 0 Matrícula 2" in page
        assert "adeudo Saldo pendiente balance Números 2" in page
        assert "Turno No se entendió Texto 1" in page
        assert "BEDEL_FIELDS_FILE" in page


class TestSearch:
    async def test_finds_by_name_phone_and_matricula(self, as_admin: httpx.AsyncClient) -> None:
        await load_two(as_admin)

        for query in ("ruiz", "55 1234 5678", "+52 1 55 1234 5678", "a001"):
            page = text_of(await as_admin.get(PAGE, params={"q": query}))
            assert "1 encontrados" in page and "Ana Ruiz" in page and "Beto" not in page, query

    async def test_without_words_lists_the_students_loaded_last(self, as_admin: httpx.AsyncClient) -> None:
        await load_two(as_admin)

        page = text_of(await as_admin.get(PAGE))

        assert "Últimos alumnos cargados" in page and "Ana Ruiz" in page and "Beto Diaz" in page

    async def test_nothing_found_says_so(self, as_admin: httpx.AsyncClient) -> None:
        await load_two(as_admin)

        assert "Ningún alumno coincide." in (await as_admin.get(PAGE, params={"q": "zzz"})).text


class TestEditAndDelete:
    async def test_an_edit_keeps_numbers_numbers_and_removes_emptied_fields(self, as_admin: httpx.AsyncClient) -> None:
        await load_two(as_admin)
        token = await page_token(as_admin, ANA)

        response = await as_admin.post(
            ANA,
            data={
                "csrf_token": token,
                "name": "Ana María Ruiz",
                "email": "ana@example.edu",
                "external_id": "A001",
                "field.adeudo": "1,200.50",
                "field.Turno": "",
            },
        )

        assert response.status_code == 303
        shown = await as_admin.get(response.headers["location"])
        assert "Se guardaron los cambios." in shown.text
        assert 'value="Ana María Ruiz"' in shown.text and 'value="1200.5"' in shown.text
        assert "Turno" not in shown.text

    async def test_a_bad_email_is_refused_and_the_typed_form_kept(self, as_admin: httpx.AsyncClient) -> None:
        await load_two(as_admin)
        token = await page_token(as_admin, ANA)

        response = await as_admin.post(ANA, data={"csrf_token": token, "name": "Otra", "email": "x" * 400})

        assert response.status_code == 422
        assert "No se guardó:" in response.text and 'value="Otra"' in response.text
        assert 'value="Ana Ruiz"' in (await as_admin.get(ANA)).text

    async def test_delete_removes_the_student_and_says_so(self, as_admin: httpx.AsyncClient) -> None:
        await load_two(as_admin)
        token = await page_token(as_admin, ANA)

        response = await as_admin.post(f"{ANA}/delete", data={"csrf_token": token})

        assert response.status_code == 303
        assert "Se eliminó el registro de +525512345678." in (await as_admin.get(response.headers["location"])).text
        assert (await as_admin.get(ANA)).status_code == 404

    async def test_a_deleted_notice_is_shown_only_for_a_phone_no_student_holds(
        self, as_admin: httpx.AsyncClient
    ) -> None:
        await load_two(as_admin)

        assert "Se eliminó" not in (await as_admin.get(PAGE, params={"deleted": "+525512345678"})).text
        assert "Se eliminó" not in (await as_admin.get(PAGE, params={"deleted": "a lie"})).text

    async def test_an_unknown_student_is_a_404_page(self, as_admin: httpx.AsyncClient) -> None:
        response = await as_admin.get("/console/students/5599999999")

        assert response.status_code == 404
        assert "No encontramos" in response.text


async def test_the_page_is_in_the_admins_menu_and_in_english(as_admin: httpx.AsyncClient) -> None:
    assert 'href="/console/students"' in (await as_admin.get("/console")).text
    token = await page_token(as_admin, PAGE)
    await as_admin.post("/console/language", data={"csrf_token": token, "lang": "en", "next": PAGE})
    assert "Find a student" in (await as_admin.get(PAGE)).text
