"""A real `bedel serve` (on SQLite and on PostgreSQL: conftest's `served_database`), accounts added with
`bedel users add`, and Debian's chromium driven by Playwright; screenshots go to docs/screenshots/,
axe-core checks each page."""

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import Page, ViewportSize

from tests.ops.processes import Served, start_serve

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
SCREENSHOTS = Path(__file__).parents[2] / "docs" / "screenshots"
# axe-core 4.14.1 from its npm package (MPL-2.0), unchanged.
AXE = (Path(__file__).with_name("axe.min.js")).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Account:
    email: str
    password: str
    role: str


ADMIN = Account("directora@example.edu", "directora-clave-1", "admin")
AGENT = Account("agente@example.edu", "agente-clave-1", "agent")
# Its own account, so locking it out leaves the others usable.
LOCKED = Account("bloqueo@example.edu", "bloqueo-clave-1", "agent")


def run_bedel(env: dict[str, str], cwd: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bedel.cli", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def bedel_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BEDEL_", "OPENAI_"))}
    return env | {"BEDEL_DATABASE_URL": database_url, "BEDEL_KNOWLEDGE_INDEX_DIR": str(tmp_path / "index")}


async def serve_console(
    env: dict[str, str], folder: Path, accounts: Sequence[Account], students_csv: str | None = None
) -> Served:
    """`bedel serve` on a database migrated by `bedel db upgrade`, with the accounts added by `bedel users
    add` and the students (when given) loaded by `bedel students import`."""
    run_bedel(env, folder, "db", "upgrade")
    for account in accounts:
        run_bedel(env, folder, "users", "add", account.email, "--role", account.role, stdin=account.password + "\n")
    if students_csv is not None:
        (folder / "alumnos.csv").write_text(students_csv, encoding="utf-8")
        run_bedel(env, folder, "students", "import", str(folder / "alumnos.csv"))
    return await start_serve(env, folder)


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's critical and serious findings on the page as it is."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE)
    found: list[dict[str, Any]] = await page.evaluate(
        """async () => (await axe.run()).violations
            .filter(v => v.impact === 'critical' || v.impact === 'serious')
            .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))"""
    )
    return found


async def capture(page: Page, name: str) -> None:
    """Screenshots on a desktop and on a phone, and the accessibility check on both."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for viewport, suffix in ((DESKTOP, ""), (PHONE, "-phone")):
        await page.set_viewport_size(viewport)
        await page.screenshot(path=SCREENSHOTS / f"{name}{suffix}.png", full_page=True)
        violations = await axe_violations(page)
        assert violations == [], f"{name}{suffix}: {json.dumps(violations, indent=1)}"
    await page.set_viewport_size(DESKTOP)
