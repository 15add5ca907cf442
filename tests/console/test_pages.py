"""Pages as a browser gets them: language, error pages, security headers, static files."""

import re
from pathlib import Path

import httpx
import pytest

from bedel.console.catalogue import Language, strings
from tests.console.accounts import ADMIN, csrf_of, page_token, sign_in

TEMPLATES = Path(__file__).parents[2] / "src" / "bedel" / "console" / "templates"


class TestLanguage:
    async def test_spanish_is_the_default(self, console: httpx.AsyncClient) -> None:
        page = await console.get("/console/login")
        assert '<html lang="es">' in page.text
        assert "Iniciar sesión" in page.text

    async def test_english_is_one_switch_away_and_stays(self, console: httpx.AsyncClient) -> None:
        token = csrf_of(await console.get("/console/login"))
        switched = await console.post(
            "/console/language", data={"csrf_token": token, "lang": "en", "next": "/console/login"}
        )
        assert switched.headers["location"] == "/console/login"
        page = await console.get("/console/login")
        assert '<html lang="en">' in page.text
        assert "Sign in" in page.text
        await sign_in(console, *ADMIN)
        assert "Sections you can open" in (await console.get("/console")).text

    async def test_an_unknown_language_is_refused(self, console: httpx.AsyncClient) -> None:
        token = csrf_of(await console.get("/console/login"))
        response = await console.post("/console/language", data={"csrf_token": token, "lang": "fr"})
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("text/html")

    async def test_htmx_reloads_the_whole_page(self, console: httpx.AsyncClient) -> None:
        token = csrf_of(await console.get("/console/login"))
        response = await console.post(
            "/console/language",
            data={"lang": "en", "next": "/console"},
            headers={"X-CSRF-Token": token, "HX-Request": "true"},
        )
        assert response.headers["hx-redirect"] == "/console"


class TestCatalogue:
    def test_both_languages_have_every_word(self) -> None:
        assert set(strings(Language.es)) == set(strings(Language.en))

    def test_every_word_a_template_uses_is_in_the_catalogue(self) -> None:
        used = set()
        for template in TEMPLATES.glob("*.html"):
            used |= set(re.findall(r"\bt\.(\w+)", template.read_text(encoding="utf-8")))
        assert used <= set(strings(Language.es)), used - set(strings(Language.es))


class TestErrorPages:
    async def test_an_unknown_console_page_is_an_html_404(self, as_admin: httpx.AsyncClient) -> None:
        response = await as_admin.get("/console/nope")
        assert response.status_code == 404
        assert "No encontramos esta página." in response.text

    async def test_the_api_keeps_its_json_errors(self, console: httpx.AsyncClient) -> None:
        response = await console.get("/nope")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"

    async def test_an_htmx_request_without_session_is_sent_to_sign_in(self, console: httpx.AsyncClient) -> None:
        response = await console.get("/console/users", headers={"HX-Request": "true"})
        assert response.headers["hx-redirect"] == "/console/login?next=/console/users"


class TestHeaders:
    @pytest.mark.parametrize("path", ["/console/login", "/console/nope", "/console/static/htmx.min.js"])
    async def test_console_responses_forbid_frames_and_foreign_scripts(
        self, console: httpx.AsyncClient, path: str
    ) -> None:
        headers = (await console.get(path)).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "default-src 'self'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"

    async def test_pages_are_not_stored(self, as_admin: httpx.AsyncClient) -> None:
        assert (await as_admin.get("/console")).headers["cache-control"] == "no-store"

    async def test_the_api_is_left_as_it_was(self, console: httpx.AsyncClient) -> None:
        assert "content-security-policy" not in (await console.get("/healthz")).headers


class TestStaticFiles:
    async def test_htmx_is_served_by_bedel(self, console: httpx.AsyncClient) -> None:
        response = await console.get("/console/static/htmx.min.js")
        assert response.status_code == 200
        assert "javascript" in response.headers["content-type"]
        assert 'version:"2.0.11"' in response.text.replace(" ", "")

    async def test_pages_load_nothing_from_elsewhere(self, as_admin: httpx.AsyncClient) -> None:
        for path in ("/console", "/console/users"):
            page = (await as_admin.get(path)).text
            assert not re.search(r'(src|href)="(https?:)?//', page), path


async def test_signing_out_needs_the_token_too(as_admin: httpx.AsyncClient) -> None:
    assert (await as_admin.post("/console/logout")).status_code == 403
    assert (await as_admin.post("/console/logout", data={"csrf_token": await page_token(as_admin)})).status_code == 303
