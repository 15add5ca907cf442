"""The documents and try-it pages in a real browser: Debian's chromium, through Playwright, against a
real `bedel serve` with the offline engine (no vendor to fake)."""

import os
import re
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, FilePayload, Page, expect
from sqlalchemy import func, select

from bedel.db import Base, create_engine
from tests.console.browser import ADMIN, CHROMIUM, DESKTOP, bedel_env, capture, serve_console
from tests.knowledge.documents import CALENDAR, FEES
from tests.polling import eventually

pytestmark = [pytest.mark.slow, pytest.mark.browser]

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

STUDENTS = (
    "matricula,nombre,telefono,adeudo,fecha_limite_pago,carrera\n"
    "A01230002,José Luis Ramírez Torres,55 2345 6789,4500.00,2026-12-10,Ingeniería en Sistemas\n"
)
LIBRARY = "# Biblioteca\n\n## Horario\n\nLa biblioteca abre de lunes a viernes de 8:00 a 20:00.\n"
QUESTION = "¿Cuánto es el recargo si pago tarde?"


@dataclass(frozen=True)
class Console:
    url: str
    database_url: str


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory, served_database: str) -> AsyncIterator[Console]:
    """`bedel serve` with an admin and one student loaded by the command line."""
    folder = tmp_path_factory.mktemp("documents")
    server = await serve_console(bedel_env(served_database, folder), folder, (ADMIN,), STUDENTS)
    yield Console(server.url, served_database)
    # The index builder (a forkserver and its worker) outlives a killed server and keeps its
    # stderr open, which stop() reads to the end: end them first.
    for pid in descendants(server.process.pid):
        os.kill(pid, signal.SIGKILL)
    server.stop()


def descendants(pid: int) -> list[int]:
    children = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [grandchild for child in children for grandchild in [child, *descendants(child)]]


@pytest.fixture
async def page(browser: Browser, served: Console) -> AsyncIterator[Page]:
    """A signed-in admin; a script failing, a file missing or the CSP blocking something fails the test."""
    context = await browser.new_context(base_url=served.url, viewport=DESKTOP, locale="es-MX")
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "response",
        lambda response: errors.append(f"{response.status} {response.url}") if response.status >= 400 else None,
    )
    await page.goto("/console/login")
    await page.get_by_label("Correo electrónico").fill(ADMIN.email)
    await page.get_by_label("Contraseña").fill(ADMIN.password)
    await page.get_by_role("button", name="Entrar").click()
    await expect(page.get_by_role("heading", name="Inicio", level=1)).to_be_visible()
    yield page
    await context.close()
    assert errors == []


def markdown(name: str, text: str) -> FilePayload:
    return {"name": name, "mimeType": "text/markdown", "buffer": text.encode()}


async def drop_files(page: Page, files: list[FilePayload]) -> None:
    """Drag files from the desktop onto the drop zone, as a person would."""
    data = await page.evaluate_handle(
        """files => {
            const data = new DataTransfer();
            for (const f of files) data.items.add(new File([f.text], f.name, {type: f.type}));
            return data;
        }""",
        [{"name": f["name"], "type": f["mimeType"], "text": f["buffer"].decode()} for f in files],
    )
    for event in ("dragenter", "dragover", "drop"):
        await page.dispatch_event(".dropzone", event, {"dataTransfer": data})


async def table_counts(database_url: str) -> dict[str, Any]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return {
                table.name: await connection.scalar(select(func.count()).select_from(table))
                for table in Base.metadata.sorted_tables
                if table.name not in ("staff_sessions", "login_throttles")
            }
    finally:
        await engine.dispose()


async def find_passages(page: Page, question: str, expected: str) -> None:
    """Ask the test question until the index has taken in the upload (built a moment after it)."""

    async def found() -> bool:
        await page.get_by_label("Pregunta como la escribiría un estudiante").fill(question)
        await page.get_by_role("button", name="Buscar pasajes").click()
        await expect(page.get_by_role("heading", name=re.compile("Pasajes encontrados"))).to_be_visible()
        return await page.locator("ol.passages li").first.filter(has_text=expected).count() > 0

    await eventually(found, within_s=30)


class TestDocuments:
    async def test_two_files_dropped_at_once_are_loaded_and_a_test_question_finds_one(self, page: Page) -> None:
        await page.get_by_role("link", name="Documentos").first.click()
        await expect(page.get_by_role("heading", name="Documentos", level=1)).to_be_visible()
        await drop_files(page, [markdown("pagos.md", FEES), markdown("calendario.md", CALENDAR)])
        chosen = page.locator(".chosen li")
        await expect(chosen).to_have_count(2)
        await expect(chosen.first).to_contain_text("pagos.md")
        await page.get_by_role("button", name="Subir").click()

        results = page.locator(".results li")
        await expect(results).to_have_count(2)
        await expect(results.filter(has_text="pagos.md")).to_contain_text("cargado")
        await expect(results.filter(has_text="calendario.md")).to_contain_text("cargado")
        await expect(page.get_by_role("heading", name="Documentos cargados (2)")).to_be_visible()
        await capture(page, "documents")

        await find_passages(page, QUESTION, "recargo del 10 %")
        first = page.locator("ol.passages li").first
        await expect(first).to_contain_text("Colegiaturas y pagos")
        await expect(first).to_contain_text(re.compile(r"Puntaje: \d+\.\d\d\s*·\s*Relevancia: \d+ %"))
        await expect(page).to_have_url(re.compile(r"/console/documents\?q="))
        await capture(page, "documents-question")

        await page.get_by_role("link", name="Colegiaturas y pagos").first.click()
        await expect(page.get_by_role("heading", name="Colegiaturas y pagos", level=1)).to_be_visible()
        await expect(page.get_by_text("Pago extemporáneo")).to_be_visible()
        await capture(page, "document")

    async def test_the_plain_file_input_works_by_keyboard(self, page: Page) -> None:
        # Waiting starts before the page loads: Playwright asks the browser to intercept file
        # choosers without waiting for it, and a lone key press can get there first (the chooser
        # then opens unseen; 4 in 40 tries lost here). The load and the focus settle it.
        async with page.expect_file_chooser() as chooser:
            await page.goto("/console/documents")
            await page.get_by_label("Archivos").focus()
            await page.keyboard.press("Space")
        await (await chooser.value).set_files([markdown("biblioteca.md", LIBRARY)])
        await expect(page.locator(".chosen li")).to_have_text(re.compile("biblioteca.md"))
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("button", name="Subir")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page.locator(".results li").filter(has_text="biblioteca.md")).to_contain_text("cargado")


class TestTryIt:
    async def test_answers_as_a_student_and_as_an_unknown_number_and_writes_nothing(
        self, page: Page, served: Console
    ) -> None:
        await page.goto("/console/documents")
        await drop_files(page, [markdown("pagos.md", FEES)])
        await page.get_by_role("button", name="Subir").click()
        await expect(page.locator(".results li")).to_have_count(1)
        await find_passages(page, QUESTION, "recargo del 10 %")
        before = await table_counts(served.database_url)

        await page.get_by_role("link", name="Probar").first.click()
        await page.get_by_label("Buscar estudiante por nombre, matrícula o teléfono").fill("ramírez")
        await page.get_by_role("button", name="Buscar", exact=True).click()
        await page.get_by_role("link", name="Preguntar como José Luis Ramírez Torres").click()
        await expect(page.get_by_text("Preguntarás como José Luis Ramírez Torres.")).to_be_visible()
        await page.get_by_label("Pregunta", exact=True).fill(QUESTION)
        await page.get_by_role("button", name="Preguntar", exact=True).click()

        await expect(page.get_by_text("Como José Luis Ramírez Torres.", exact=True)).to_be_visible()
        await expect(page.locator("blockquote.answer")).not_to_be_empty()
        passages = page.locator("ol.passages li")
        await expect(passages.first).to_contain_text("Colegiaturas y pagos")
        await expect(passages.first).to_contain_text(re.compile(r"Puntaje: \d+\.\d\d"))
        fields = page.get_by_role("heading", name=re.compile(r"Campos del registro usados \([1-9]"))
        await expect(fields).to_be_visible()
        await expect(page.locator("dd").filter(has_text="4500.00")).to_be_visible()
        await page.get_by_text("Instrucciones enviadas al modelo").click()
        await expect(page.locator("pre.instructions")).to_contain_text("José Luis Ramírez Torres")
        await capture(page, "try")

        await page.get_by_label("Teléfono", exact=True).fill("55 9999 0000")
        await page.get_by_role("button", name="Preguntar", exact=True).click()
        await expect(page.get_by_text("Como un número sin registro.", exact=True)).to_be_visible()
        await expect(page.get_by_text("Sin registro: el número no es de ningún estudiante.")).to_be_visible()
        await expect(page.locator("ol.passages li").first).to_contain_text("Colegiaturas y pagos")
        await capture(page, "try-unknown")

        assert await table_counts(served.database_url) == before
