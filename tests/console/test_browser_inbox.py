"""The inbox in a real browser: a handoff started by a signed WhatsApp webhook appears without
reloading, an agent takes it and replies, the reply reaches (a fake of) Meta's Graph API, and
its tick moves when the signed receipt arrives; a second agent sees it taken."""

import itertools
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.channels.vendors import ACCESS_TOKEN, PHONE_NUMBER_ID, button_reply, signed, status_update, text_message
from tests.console.browser import ADMIN, AGENT, CHROMIUM, DESKTOP, Account, bedel_env, capture, serve_console
from tests.ops.processes import Served, whatsapp_env
from tests.ops.upstreams import FakeGraph
from tests.polling import eventually
from tests.ports import free_port, serving

pytestmark = [pytest.mark.slow, pytest.mark.browser]

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

WA_ID = "5215512345678"
PHONE = "+525512345678"


@dataclass
class Graph:
    """Meta's send endpoint on loopback: keeps each body it was sent and answers with a new wamid."""

    fake: FakeGraph
    bodies: list[dict[str, Any]] = field(default_factory=list)
    wamids: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
async def graph(served_database: str) -> AsyncIterator[Graph]:
    """One per database: what the run on one sent (its reply buttons name that database's thread) never
    stands in for what the run on the other must send."""
    app = FastAPI()
    port = free_port()
    recorded = Graph(FakeGraph(root=f"http://127.0.0.1:{port}"))
    numbers = itertools.count(1)

    @app.post("/{sender}/v23.0/{phone_number_id}/messages")
    async def send(sender: str, phone_number_id: str, request: Request) -> dict[str, Any]:
        assert phone_number_id == PHONE_NUMBER_ID
        assert request.headers.get("authorization") == f"Bearer {ACCESS_TOKEN}"
        body = await request.json()
        wamid = f"wamid.HBgNNTIxNTUxMjM0NTY3OBUCABEYEjAw{next(numbers):04d}"
        recorded.bodies.append(body)
        recorded.wamids.append(wamid)
        # The Graph API's answer to a send, as its reference shows it.
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": body["to"]}],
            "messages": [{"id": wamid}],
        }

    async with serving(app, port):
        yield recorded


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory, served_database: str, graph: Graph) -> AsyncIterator[Served]:
    """`bedel serve` with WhatsApp sending to the fake Graph API; a student on record; two agents."""
    folder = tmp_path_factory.mktemp("inbox")
    env = bedel_env(served_database, folder) | whatsapp_env(graph.fake)
    env |= {"BEDEL_CONSOLE_LIVE_POLL_S": "0.3"}
    second = Account("coordinacion@example.edu", "coordinacion-clave-1", "agent")
    students = "telefono,nombre,matricula\n5512345678,Lucía Pérez,A01234\n"
    server = await serve_console(env, folder, (ADMIN, AGENT, second), students)
    yield server
    server.stop()


async def signed_in(browser: Browser, url: str, email: str, password: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(base_url=url, viewport=DESKTOP, locale="es-MX")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    await page.goto("/console/login")
    await page.get_by_label("Correo electrónico").fill(email)
    await page.get_by_label("Contraseña").fill(password)
    await page.get_by_role("button", name="Entrar").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Inicio")
    page.errors = errors  # type: ignore[attr-defined]
    return context, page


async def webhook(server: Served, payload: dict[str, Any]) -> None:
    """What Meta posts, signed with the app secret (X-Hub-Signature-256)."""
    body, headers = signed(payload)
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.post("/webhooks/whatsapp", content=body, headers=headers)).status_code == 200


def buttons(body: dict[str, Any]) -> list[str]:
    if body.get("type") != "interactive":
        return []
    return [button["reply"]["id"] for button in body["interactive"]["action"]["buttons"]]


async def test_a_handoff_appears_is_taken_answered_and_delivered(
    browser: Browser, served: Served, graph: Graph
) -> None:
    first_context, page = await signed_in(browser, served.url, AGENT.email, AGENT.password)
    await page.get_by_role("navigation", name="Secciones").get_by_role("link", name="Bandeja").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Bandeja de entrada")
    await expect(page.get_by_text("Nadie espera a una persona ahora.")).to_be_visible()

    # The student asks for a person; the bot offers one with reply buttons, and they tap "Sí".
    await webhook(served, text_message(WA_ID, "Quiero hablar con una persona sobre mi constancia", "wamid.in1"))
    await eventually(lambda: any(buttons(body) for body in graph.bodies), within_s=20)
    offer = next(body for body in graph.bodies if buttons(body))
    yes = next(button for button in buttons(offer) if button.startswith("handoff:yes:"))
    await webhook(served, button_reply(WA_ID, "wamid.in2", yes, "Sí", replied_to=graph.wamids[0]))

    # No reload: the stream tells the page, and the row comes in.
    student = page.get_by_role("link", name="Lucía Pérez")
    await expect(student).to_be_visible(timeout=15_000)
    await expect(page.get_by_text("Sin asignar")).to_be_visible()
    await capture(page, "inbox")

    await student.click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Lucía Pérez")
    await page.get_by_role("button", name="Tomar la conversación").click()
    await expect(page.get_by_text("La atiendes tú.")).to_be_visible()

    # A second agent, in another browser, sees who has it and cannot take it.
    second_context, other = await signed_in(browser, served.url, "coordinacion@example.edu", "coordinacion-clave-1")
    await other.goto("/console/inbox")
    await expect(other.get_by_text(f"La atiende {AGENT.email}")).to_be_visible()
    await other.get_by_role("link", name="Lucía Pérez").click()
    await expect(other.get_by_text(f"La atiende {AGENT.email}.")).to_be_visible()
    await expect(other.get_by_role("button", name="Tomar la conversación")).to_have_count(0)

    await expect(page.get_by_text("Ventana de WhatsApp abierta")).to_be_visible()
    sent_before = len(graph.bodies)
    await page.get_by_label("Tu respuesta al estudiante").fill("Hola Lucía, soy Ana de servicios escolares.")
    await page.get_by_role("button", name="Enviar").click()
    await eventually(lambda: len(graph.bodies) > sent_before, within_s=20)
    reply = graph.bodies[-1]
    # To the number the bot wrote to (Meta's form of the Mexican mobile number).
    assert (reply["to"], reply["type"], reply["text"]["body"]) == (
        offer["to"],
        "text",
        "Hola Lucía, soy Ana de servicios escolares.",
    )
    mine = page.locator(".message.staff").last
    await expect(mine.locator(".tick")).to_contain_text("Enviado", timeout=15_000)

    # Meta's receipt, signed: the tick moves without a reload, on both agents' pages.
    await webhook(served, status_update(WA_ID, graph.wamids[-1], "delivered"))
    await expect(mine.locator(".tick")).to_contain_text("Entregado", timeout=15_000)
    await expect(other.locator(".message.staff").last.locator(".tick")).to_contain_text("Entregado", timeout=15_000)
    await webhook(served, status_update(WA_ID, graph.wamids[-1], "read"))
    await expect(mine.locator(".tick")).to_contain_text("Leído", timeout=15_000)
    await page.locator(".message.assistant details").first.locator("summary").click()
    await capture(page, "conversation")

    await page.goto("/console/conversations?q=constancia")
    await expect(page.get_by_role("link", name="Lucía Pérez")).to_be_visible()
    await capture(page, "conversations")

    # Back to the bot: the conversation leaves the inbox of the second agent without a reload.
    await page.goto(f"{page.url.split('/console')[0]}/console/inbox")
    await other.goto("/console/inbox")
    await page.get_by_role("link", name="Lucía Pérez").click()
    await page.get_by_role("button", name="Devolver al asistente").click()
    await expect(page.get_by_text("Con el asistente")).to_be_visible()
    await expect(other.get_by_text("Nadie espera a una persona ahora.")).to_be_visible(timeout=15_000)

    for opened in (page, other):
        assert opened.errors == []  # type: ignore[attr-defined]
    await first_context.close()
    await second_context.close()
