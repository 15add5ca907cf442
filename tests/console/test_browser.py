"""The console in a real browser, as staff would use it: Debian's chromium, through Playwright,
against a real `bedel serve`."""

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from sqlalchemy import select

from bedel.db import create_engine
from bedel.users.models import StaffUser
from tests.console.browser import (
    ADMIN,
    AGENT,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    LOCKED,
    Account,
    bedel_env,
    capture,
    run_bedel,
)
from tests.ops.processes import start_serve

pytestmark = [pytest.mark.slow, pytest.mark.browser]

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)


@dataclass(frozen=True)
class Console:
    url: str
    database_url: str


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    """`bedel serve` on a SQLite file migrated by `bedel db upgrade`, with accounts added by `bedel users add`."""
    folder = tmp_path_factory.mktemp("console")
    database_url = f"sqlite+aiosqlite:///{folder / 'bedel.db'}"
    env = bedel_env(database_url, folder)
    run_bedel(env, folder, "db", "upgrade")
    for account in (ADMIN, AGENT, LOCKED):
        run_bedel(env, folder, "users", "add", account.email, "--role", account.role, stdin=account.password + "\n")
    server = await start_serve(env, folder)
    yield Console(server.url, database_url)
    server.stop()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser: Browser, served: Console) -> AsyncIterator[Page]:
    """A fresh browser profile; a script failing, a file missing or the CSP blocking something fails the test."""
    context = await browser.new_context(base_url=served.url, viewport=DESKTOP, locale="es-MX")
    page = await context.new_page()
    errors: list[str] = []
    # Pages answered 401, 403 or 429 are expected here (and checked by each test); a script or
    # stylesheet that fails to load, or anything the CSP blocks, is not.
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "response",
        lambda response: (
            errors.append(f"{response.status} {response.url}")
            if response.request.resource_type not in ("document", "xhr", "fetch") and response.status >= 400
            else None
        ),
    )
    yield page
    await context.close()
    assert errors == []


async def try_sign_in(page: Page, email: str, password: str) -> None:
    """Fill and send the sign-in form; returns once Bedel has answered it."""
    await page.goto("/console/login")
    await page.get_by_label("Correo electrónico").fill(email)
    await page.get_by_label("Contraseña").fill(password)
    async with page.expect_response(lambda r: r.url.endswith("/console/login") and r.request.method == "POST"):
        await page.get_by_role("button", name="Entrar").click()


async def sign_in(page: Page, account: Account) -> None:
    await try_sign_in(page, account.email, account.password)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Inicio")


async def stored_users(database_url: str) -> dict[str, tuple[str, bool]]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(select(StaffUser.email, StaffUser.role, StaffUser.disabled))
            return {email: (role, disabled) for email, role, disabled in rows}
    finally:
        await engine.dispose()


class TestSignInAndOut:
    async def test_by_keyboard_alone(self, page: Page) -> None:
        await page.goto("/console")
        await expect(page).to_have_url("/console/login?next=/console")
        await capture(page, "login")
        # The email field has the focus; Tab to the password, Enter to send.
        await page.keyboard.type(ADMIN.email)
        await page.keyboard.press("Tab")
        await page.keyboard.type(ADMIN.password)
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name="Inicio", level=1)).to_be_visible()
        await expect(page).to_have_url("/console")
        await capture(page, "home")
        # The first Tab offers to skip the menu.
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("link", name="Saltar al contenido")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page.locator("main")).to_be_focused()
        await page.get_by_role("button", name="Cerrar sesión").click()
        await expect(page.get_by_role("heading", name="Iniciar sesión")).to_be_visible()
        await page.goto("/console")
        await expect(page).to_have_url("/console/login?next=/console")

    async def test_five_wrong_passwords_lock_the_account(self, page: Page) -> None:
        for attempt in range(5):
            await try_sign_in(page, LOCKED.email, f"equivocada-{attempt}")
        await expect(page.get_by_role("alert")).to_contain_text("Demasiados intentos fallidos")
        await try_sign_in(page, LOCKED.email, LOCKED.password)
        await expect(page.get_by_role("alert")).to_contain_text("Vuelve a intentarlo en 5 min.")
        await capture(page, "login-locked")


class TestCSRF:
    async def test_a_form_posted_without_its_token_is_refused(self, page: Page, served: Console) -> None:
        await sign_in(page, ADMIN)
        await page.goto("/console/users")
        # What a forged form would lack: the hidden field and htmx's header.
        await page.evaluate(
            """() => {
                document.body.removeAttribute('hx-headers');
                document.querySelectorAll('input[name=csrf_token]').forEach(input => input.remove());
            }"""
        )
        await page.get_by_label("Correo", exact=True).fill("falsa@example.edu")
        await page.get_by_label("Contraseña", exact=True).fill("falsa-clave-larga")
        await page.get_by_role("button", name="Agregar cuenta").click()
        await expect(page.get_by_role("alert")).to_contain_text("El formulario caducó")
        await capture(page, "csrf-refused")
        assert "falsa@example.edu" not in await stored_users(served.database_url)


class TestRoles:
    async def test_an_agent_typing_an_admin_page_gets_403(self, page: Page) -> None:
        await sign_in(page, AGENT)
        await expect(page.get_by_role("link", name="Usuarios")).to_have_count(0)
        response = await page.goto("/console/users")
        assert response is not None and response.status == 403
        await expect(page.get_by_role("alert")).to_contain_text("Tu rol no permite")
        await capture(page, "forbidden")

    async def test_an_agent_posting_an_admin_action_gets_403_and_nothing_changes(
        self, page: Page, served: Console
    ) -> None:
        database_url = served.database_url
        engine = create_engine(database_url)
        async with engine.connect() as connection:
            admin_id = await connection.scalar(select(StaffUser.id).where(StaffUser.email == ADMIN.email))
        await engine.dispose()
        before = await stored_users(database_url)
        await sign_in(page, AGENT)
        # A form the agent builds by hand, with their own valid token.
        status = await page.evaluate(
            """async ([adminId]) => {
                const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token'];
                const statuses = [];
                for (const [path, fields] of [
                    [`/console/users/${adminId}/disable`, {}],
                    [`/console/users/${adminId}/password`, {password: 'tomada-por-agente'}],
                    ['/console/users', {email: 'nueva@example.edu', role: 'admin', password: 'agente-la-crea'}],
                ]) {
                    const body = new URLSearchParams({csrf_token: token, ...fields});
                    statuses.push((await fetch(path, {method: 'POST', body})).status);
                }
                return statuses;
            }""",
            [str(admin_id)],
        )
        assert status == [403, 403, 403]
        assert await stored_users(database_url) == before


class TestLanguage:
    async def test_switching_to_english(self, page: Page) -> None:
        await page.goto("/console/login")
        await page.get_by_role("button", name="English").click()
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        await expect(page.get_by_role("button", name="English")).to_have_attribute("aria-pressed", "true")
        await page.get_by_label("Email").fill(ADMIN.email)
        await page.get_by_label("Password").fill(ADMIN.password)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Home")).to_be_visible()
        await capture(page, "home-en")


class TestUsersPage:
    async def test_an_admin_adds_disables_and_resets_an_account(self, page: Page, served: Console) -> None:
        await sign_in(page, ADMIN)
        await page.get_by_role("navigation").get_by_role("link", name="Usuarios").click()
        await expect(page.get_by_role("heading", name="Usuarios", level=1)).to_be_visible()
        await page.get_by_label("Correo", exact=True).fill("orientacion@example.edu")
        await page.get_by_label("Rol").select_option("agent")
        await page.get_by_label("Contraseña", exact=True).fill("orientacion-clave-1")
        await page.get_by_role("button", name="Agregar cuenta").click()
        await expect(page.get_by_role("status")).to_have_text("Se agregó la cuenta orientacion@example.edu.")
        await page.get_by_role("button", name="Desactivar: orientacion@example.edu").click()
        await expect(page.get_by_role("status")).to_contain_text("Se desactivó orientacion@example.edu")
        row = page.get_by_role("row").filter(has_text="orientacion@example.edu")
        await row.get_by_text("Restablecer contraseña").click()
        await row.get_by_label("Nueva contraseña de orientacion@example.edu").fill("orientacion-clave-2")
        await row.get_by_role("button", name="Guardar contraseña").click()
        await expect(page.get_by_role("status")).to_contain_text("Se cambió la contraseña de orientacion@example.edu")
        await capture(page, "users")
        users = await stored_users(served.database_url)
        assert users["orientacion@example.edu"] == ("agent", True)

        # Each change is in the audit log, under the admin who made it.
        await page.get_by_role("navigation").get_by_role("link", name="Auditoría").click()
        await expect(page.get_by_role("heading", name="Auditoría", level=1)).to_be_visible()
        for action in ("user.add", "user.disable", "user.password_reset"):
            await expect(page.get_by_role("row").filter(has_text=action)).to_contain_text(ADMIN.email)
        await capture(page, "audit")
