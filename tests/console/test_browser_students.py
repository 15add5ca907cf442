"""The students page in a real browser: an admin loads next term's Excel file with one bad row,
checks how its columns were understood, finds a student, corrects and deletes them."""

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from bedel.db import create_engine
from bedel.students.models import Student
from tests.console.browser import ADMIN, CHROMIUM, DESKTOP, bedel_env, capture, serve_console
from tests.students.workbooks import workbook

pytestmark = [pytest.mark.slow, pytest.mark.browser]

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

ROWS: list[list[Any]] = [
    ["Matrícula", "NomAlumno", "Celular", "SaldoPendiente", "Fec_Limite", "prom_gral", "Turno"],
    ["A24001", "Ana Sofía Ruiz", "+52 55 1234 5678", 4500, "2027-02-10", 9.1, "Matutino"],
    ["A24002", "Bruno Díaz", "55 87", 0, "2027-02-10", 8.4, "Vespertino"],
    ["A24003", "Carla Gómez", "55 2345 6789", 1250.5, "2027-03-10", 7.8, "Matutino"],
    ["A24004", "Diego Luna", "55 3456 7890", 0, "2027-02-10", 9.6, None],
]


@dataclass(frozen=True)
class Console:
    url: str
    database_url: str
    folder: Path


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory, served_database: str) -> AsyncIterator[Console]:
    folder = tmp_path_factory.mktemp("students")
    server = await serve_console(bedel_env(served_database, folder), folder, (ADMIN,))
    yield Console(server.url, served_database, folder)
    server.stop()


@pytest.fixture
async def page(browser: Browser, served: Console) -> AsyncIterator[Page]:
    """A fresh browser profile; a script failing or anything the CSP blocks fails the test."""
    context = await browser.new_context(base_url=served.url, viewport=DESKTOP, locale="es-MX")
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    await context.close()
    assert errors == []


async def stored(database_url: str) -> dict[str, tuple[str | None, dict[str, object]]]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(select(Student.phone, Student.name, Student.attributes))
            return {phone: (name, attributes) for phone, name, attributes in rows}
    finally:
        await engine.dispose()


async def test_an_admin_loads_an_excel_list_checks_it_and_corrects_a_student(page: Page, served: Console) -> None:
    excel = served.folder / "alumnos-2027.xlsx"
    excel.write_bytes(workbook(ROWS))
    await page.goto("/console/login")
    await page.get_by_label("Correo electrónico").fill(ADMIN.email)
    await page.get_by_label("Contraseña").fill(ADMIN.password)
    await page.get_by_role("button", name="Entrar").click()
    await page.get_by_role("navigation").get_by_role("link", name="Alumnos").click()
    await expect(page.get_by_role("heading", name="Alumnos", level=1)).to_be_visible()
    await capture(page, "students-empty")

    # Import: the good rows load, the bad one is shown by its line and reason.
    await page.get_by_label("Archivo de alumnos").set_input_files(excel)
    await page.get_by_role("button", name="Cargar lista").click()
    await expect(page.get_by_role("status")).to_contain_text(
        "alumnos-2027.xlsx: 3 alumnos nuevos, 0 actualizados, 1 filas"
    )
    await expect(page).to_have_url("/console/students")
    bad = page.get_by_role("table", name="Filas que no se cargaron").get_by_role("row").filter(has_text="Línea 3")
    await expect(bad).to_contain_text("Teléfono no válido: «55 87»")
    understood = page.get_by_role("table", name="Cómo se entendió cada columna del archivo")
    await expect(understood.get_by_role("row").filter(has_text="Fec_Limite")).to_contain_text("Fecha límite de pago")
    await expect(understood.get_by_role("row").filter(has_text="Turno")).to_contain_text("No se entendió")
    await capture(page, "students-imported")
    assert set(await stored(served.database_url)) == {"+525512345678", "+525523456789", "+525534567890"}

    # The columns of the loaded list.
    await page.get_by_role("link", name="Ver cómo se entendió cada columna").click()
    await expect(page.get_by_role("heading", name="Columnas de la lista")).to_be_visible()
    columns = page.get_by_role("table", name="Otras columnas")
    await expect(columns.get_by_role("row").filter(has_text="SaldoPendiente")).to_contain_text("Saldo pendiente")
    await expect(columns.get_by_role("row").filter(has_text="prom_gral")).to_contain_text("Promedio")
    await capture(page, "students-fields")

    # Find one student by matrícula, open and correct the record.
    await page.get_by_role("link", name="← Alumnos").click()
    await page.get_by_label("Nombre, teléfono, matrícula o correo").fill("a24003")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("table").get_by_role("row")).to_have_count(2)
    await page.get_by_role("link", name="Carla Gómez").click()
    await expect(page.get_by_role("heading", name="Carla Gómez", level=1)).to_be_visible()
    await page.get_by_label("Nombre", exact=True).fill("Carla Gómez Pérez")
    await page.get_by_label("Saldo pendiente SaldoPendiente").fill("0")
    await page.get_by_role("button", name="Guardar cambios").click()
    await expect(page.get_by_role("status")).to_have_text("Se guardaron los cambios.")
    await capture(page, "student")
    carla = (await stored(served.database_url))["+525523456789"]
    assert carla[0] == "Carla Gómez Pérez" and carla[1]["SaldoPendiente"] == 0

    # Delete another one.
    await page.goto("/console/students?q=Diego")
    await page.get_by_role("link", name="Diego Luna").click()
    await page.get_by_text("Eliminar el registro", exact=True).last.click()
    await page.get_by_role("button", name="Sí, eliminar a Diego Luna").click()
    await expect(page.get_by_role("status")).to_have_text("Se eliminó el registro de +525534567890.")
    assert "+525534567890" not in await stored(served.database_url)
