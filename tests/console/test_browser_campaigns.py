"""A payment reminder sent from the console in a real browser, and the dashboard afterwards: Debian's
chromium through Playwright against a real `bedel serve` whose WhatsApp channel sends to a fake Graph API."""

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.campaigns.provider import FakeGraph, fake_graph
from tests.campaigns.samples import STUDENTS_CSV
from tests.channels.vendors import ACCESS_TOKEN, APP_SECRET, PHONE_NUMBER_ID, VERIFY_TOKEN, signed, text_message
from tests.console.browser import ADMIN, CHROMIUM, DESKTOP, bedel_env, capture, serve_console
from tests.polling import eventually

pytestmark = [pytest.mark.slow, pytest.mark.browser]

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

WA_ID = "5215599998888"


@dataclass(frozen=True)
class Console:
    url: str
    graph: FakeGraph


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory, served_database: str) -> AsyncIterator[Console]:
    """`bedel serve` with the students of tests/campaigns and WhatsApp sending to a local fake Graph API."""
    folder = tmp_path_factory.mktemp("campaigns")
    async with fake_graph() as graph:
        env = bedel_env(served_database, folder) | {
            "BEDEL_WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
            "BEDEL_WHATSAPP_APP_SECRET": APP_SECRET,
            "BEDEL_WHATSAPP_ACCESS_TOKEN": ACCESS_TOKEN,
            "BEDEL_WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
            "BEDEL_WHATSAPP_API_BASE": graph.base,
            "BEDEL_WHATSAPP_BURST_WINDOW_S": "0",
            "BEDEL_MODEL_PRICES": '{"offline": [0.5, 1.5]}',
        }
        server = await serve_console(env, folder, (ADMIN,), STUDENTS_CSV)
        yield Console(server.url, graph)
        server.stop()


@pytest.fixture
async def page(browser: Browser, served: Console) -> AsyncIterator[Page]:
    """A signed-in admin; a script failing, a file missing or the CSP blocking something fails the test."""
    context = await browser.new_context(base_url=served.url, viewport=DESKTOP, locale="es-MX")
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto("/console/login")
    await page.get_by_label("Correo electrónico").fill(ADMIN.email)
    await page.get_by_label("Contraseña").fill(ADMIN.password)
    await page.get_by_role("button", name="Entrar").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Inicio")
    yield page
    await context.close()
    assert errors == []


async def chat_turns(served: Console) -> None:
    """Two questions over the API (one asks for a person) and one over a signed WhatsApp webhook."""
    async with httpx.AsyncClient(base_url=served.url) as client:
        for phone, question in (("+5215511110000", "Hola"), ("+5215522220000", "Quiero hablar con una persona")):
            answer = await client.post("/chat", json={"phone": phone, "question": question})
            assert answer.status_code == 200, answer.text
        body, headers = signed(text_message(WA_ID, "¿Hay estacionamiento para motos?", "wamid.HBgLMTIz"))
        assert (await client.post("/webhooks/whatsapp", content=body, headers=headers)).status_code == 200
    # The answer to the WhatsApp question reaches the fake Graph API, then the privacy notice a new contact gets.
    await eventually(lambda: sum(served.graph.accepted.values()) == 2, within_s=20)


class TestCampaignAndDashboard:
    async def test_a_reminder_is_previewed_started_and_followed_then_the_dashboard_shows_the_day(
        self, page: Page, served: Console
    ) -> None:
        await chat_turns(served)
        # Sends wait until the test has seen the campaign running.
        served.graph.hold = asyncio.Event()

        await page.get_by_role("link", name="Campañas", exact=True).first.click()
        await expect(page.get_by_role("heading", name="Campañas", level=1)).to_be_visible()
        await expect(page.get_by_text("Todavía no hay campañas.")).to_be_visible()
        await page.get_by_role("link", name="Nueva campaña").click()
        await page.get_by_label("Nombre", exact=True).fill("Recordatorio de pago")
        await page.get_by_label("Campo 1").select_option(label="Meses vencidos")
        await page.get_by_label("Comparación 1").select_option(label="es mayor o igual a")
        await page.get_by_label("Valor 1").fill("1")
        await page.get_by_label("Plantilla", exact=True).fill("recordatorio_pago")
        await page.get_by_label("Parámetros de la plantilla").fill("{{ name }}\n{{ adeudo }}")
        await page.get_by_role("button", name="Vista previa").click()
        preview = page.locator("#preview")
        await expect(preview).to_contain_text("Llegaría a 2 estudiantes.")
        await expect(preview).to_contain_text("teléfono no válido: 1")
        await expect(preview).to_contain_text("Ana Ruiz | 4500.00")
        await capture(page, "campaign-preview")

        await page.get_by_role("button", name="Guardar campaña").click()
        await expect(page.get_by_role("heading", name="Recordatorio de pago", level=1)).to_be_visible()
        await expect(page.locator("#campaign-status")).to_have_text("Borrador")
        await page.get_by_role("button", name="Iniciar").click()
        await expect(page.locator("#campaign-status")).to_have_text("Enviando")
        await eventually(lambda: served.graph.arrived >= 1, within_s=20)
        await expect(page.locator('[data-count="pending"]')).to_have_text("2")
        await capture(page, "campaign-running")

        served.graph.hold.set()
        # The progress bar follows on its own; the page reloads itself when the campaign completes.
        await expect(page.locator("#campaign-status")).to_have_text("Terminada", timeout=20_000)
        await expect(page.locator('[data-count="sent"]')).to_have_text("2")
        await expect(page.locator("#progress-bar")).to_have_attribute("value", "3")
        await capture(page, "campaign-completed")
        served.graph.hold = None
        await page.get_by_role("link", name="← Todas las campañas").click()
        await expect(page.get_by_role("row", name="Recordatorio de pago")).to_contain_text("Terminada")
        await capture(page, "campaigns")

        await page.get_by_role("link", name="Panel").first.click()
        await expect(page.get_by_role("heading", name="Panel", level=1)).to_be_visible()
        await expect(page.locator('[data-figure="questions"]')).to_have_text("3")
        await expect(page.locator('[data-figure="waiting"]')).to_have_text("1")
        await expect(page.locator("#summary-per-day")).to_contain_text("3 preguntas en 7 días")
        await expect(page.locator("#summary-unanswered")).to_contain_text("¿hay estacionamiento para motos?")
        # Chart.js drew every chart from the page's JSON block (its scripts run a moment after htmx
        # swapped the page in; dashboard.js draws them all at once).
        await page.wait_for_function(
            "() => window.Chart !== undefined && [...document.querySelectorAll('canvas')].some(c => Chart.getChart(c))"
        )
        drawn = await page.evaluate(
            "() => [...document.querySelectorAll('canvas')].map(c => Boolean(Chart.getChart(c)))"
        )
        # Nobody rated an answer and no document was cited: those two show their sentence alone.
        assert drawn == [True] * 7
        # A chart's numbers are in its table too, for people who cannot see it.
        await page.locator("#title-per-day ~ details summary").click()
        await expect(page.locator("#title-per-day ~ details table")).to_contain_text("WhatsApp")
        await capture(page, "dashboard")
        # Another period through htmx: the new canvases have the old ones' ids, and what Chart.js
        # set on the old ones must not be copied over as an inline style (the CSP would refuse it).
        await page.get_by_role("link", name="Últimos 30 días").click()
        await expect(page.locator("#summary-per-day")).to_contain_text("3 preguntas en 30 días")
