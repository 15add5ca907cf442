"""The campaigns pages (admins): build a filter or upload a list, preview, save, start, pause, resume,
cancel, follow the progress, and read and download the failures."""

import csv
import io
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest
import respx

from bedel.config import Settings
from bedel.db import create_engine, create_sessionmaker, session_scope
from bedel.state import AppState
from bedel.students.service import import_students
from tests.campaigns.provider import GraphTemplates
from tests.campaigns.samples import STUDENTS_CSV
from tests.channels.vendors import CHANNEL_SETTINGS, graph_error
from tests.console.accounts import page_token

WHATSAPP = {
    "name": "Recordatorio de pago",
    "channel": "whatsapp_template",
    "template_name": "recordatorio_pago",
    "template_language": "es_MX",
    "template_parameters": "{{ name }}\n{{ adeudo }}",
    "audience": "filter",
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """WhatsApp and SMS configured; sending driven step by step through the runner, as the campaign tests do."""
    return make_settings(**CHANNEL_SETTINGS | {"jobs_in_process": False, "campaign_rate_whatsapp": 0})


@pytest.fixture(autouse=True)
async def students(clean_database: str) -> None:
    engine = create_engine(clean_database)
    try:
        async for session in session_scope(create_sessionmaker(engine)):
            await import_students(session, STUDENTS_CSV.encode(), "alumnos.csv")
    finally:
        await engine.dispose()


@pytest.fixture
def graph() -> Iterator[GraphTemplates]:
    with respx.mock(assert_all_called=False) as router:
        yield GraphTemplates(router)


def runner(client: httpx.AsyncClient) -> AppState:
    app: Any = client._transport.app  # type: ignore[attr-defined]
    state: AppState = app.state.bedel
    return state


async def post_form(
    admin: httpx.AsyncClient,
    path: str,
    form: dict[str, str],
    conditions: Sequence[tuple[str, str, str]] = (),
    **kw: Any,
) -> httpx.Response:
    token = await page_token(admin, "/console/campaigns/new")
    data: dict[str, Any] = {"csrf_token": token, **form}
    if conditions:
        data |= {
            "field": [c[0] for c in conditions],
            "operator": [c[1] for c in conditions],
            "value": [c[2] for c in conditions],
        }
    return await admin.post(path, data=data, **kw)


async def create(admin: httpx.AsyncClient, conditions: list[tuple[str, str, str]]) -> str:
    response = await post_form(admin, "/console/campaigns", WHATSAPP, conditions)
    assert response.status_code == 303, response.text
    found = re.fullmatch(r"/console/campaigns/([0-9a-f-]{36})", response.headers["location"])
    assert found is not None
    return found.group(1)


async def run_until_idle(client: httpx.AsyncClient) -> None:
    while await runner(client).campaigns.run_once():
        pass


async def act(admin: httpx.AsyncClient, campaign_id: str, action: str) -> httpx.Response:
    token = await page_token(admin, f"/console/campaigns/{campaign_id}")
    return await admin.post(f"/console/campaigns/{campaign_id}/{action}", data={"csrf_token": token})


class TestBuilder:
    async def test_offers_the_records_own_fields_and_the_configured_channels(self, as_admin: httpx.AsyncClient) -> None:
        page = await as_admin.get("/console/campaigns/new")
        assert page.status_code == 200
        assert '<option value="meses_vencidos">' in page.text
        assert '<option value="carrera">' in page.text
        assert '<option value="external_id">Matrícula</option>' in page.text
        channels = re.search(r'<select id="campaign-channel".*?</select>', page.text, re.S)
        assert channels is not None
        assert '<option value="whatsapp_template" selected>WhatsApp (plantilla)</option>' in channels.group(0)
        assert "email" not in channels.group(0)

    async def test_the_preview_counts_skips_and_renders_three_messages(self, as_admin: httpx.AsyncClient) -> None:
        response = await post_form(
            as_admin,
            "/console/campaigns/preview",
            WHATSAPP,
            [("meses_vencidos", ">=", "1"), ("carrera", "==", "derecho")],
        )
        assert response.status_code == 200
        assert "Llegaría a 2 estudiantes." in response.text
        assert "<code>meses_vencidos &gt;= 1 and carrera == &#34;derecho&#34;</code>" in response.text
        # Dario's number cannot be dialled: skipped, with the reason.
        assert "teléfono no válido: 1" in response.text
        assert "recordatorio_pago</code>: Ana Ruiz | 4500.00" in response.text
        assert "Beto Díaz | 1200.50" in response.text
        # The form keeps what was typed.
        assert 'value="Recordatorio de pago"' in response.text

    async def test_is_one_of_takes_values_separated_by_commas(self, as_admin: httpx.AsyncClient) -> None:
        response = await post_form(
            as_admin, "/console/campaigns/preview", WHATSAPP, [("carrera", "in", "Ingeniería, derecho")]
        )
        assert "Llegaría a 3 estudiantes." in response.text
        assert "carrera in [&#34;Ingeniería&#34;, &#34;derecho&#34;]" in response.text

    async def test_a_value_with_quotes_stays_text(self, as_admin: httpx.AsyncClient) -> None:
        response = await post_form(as_admin, "/console/campaigns/preview", WHATSAPP, [("name", "==", 'Ana" or 1')])
        assert response.status_code == 200
        assert "Llegaría a 0 estudiantes." in response.text

    async def test_an_unknown_comparison_is_refused(self, as_admin: httpx.AsyncClient) -> None:
        response = await post_form(as_admin, "/console/campaigns/preview", WHATSAPP, [("carrera", "~=", "x")])
        assert response.status_code == 422
        assert "Elige una comparación de la lista." in response.text

    async def test_the_preview_stores_nothing(self, as_admin: httpx.AsyncClient) -> None:
        await post_form(as_admin, "/console/campaigns/preview", WHATSAPP, [("meses_vencidos", ">=", "1")])
        assert "Todavía no hay campañas." in (await as_admin.get("/console/campaigns")).text

    async def test_a_list_of_phones_and_emails_is_uploaded(self, as_admin: httpx.AsyncClient) -> None:
        listed = "telefono\n+52 55 1111 2222\n+52 55 9999 0000;nadie\n"
        response = await post_form(
            as_admin,
            "/console/campaigns/preview",
            WHATSAPP | {"audience": "list"},
            files={"recipients_file": ("lista.csv", listed.encode(), "text/csv")},
        )
        assert response.status_code == 200, response.text
        assert "Llegaría a 2 estudiantes." in response.text
        assert "teléfono no válido: 2" in response.text

    async def test_an_unknown_field_is_refused_with_the_reason(self, as_admin: httpx.AsyncClient) -> None:
        response = await post_form(as_admin, "/console/campaigns/preview", WHATSAPP, [("beca", "==", "si")])
        assert response.status_code == 422
        assert "No se pudo preparar la campaña:" in response.text
        assert "no student record has the field &#39;beca&#39;" in response.text

    async def test_a_missing_template_is_refused_and_nothing_is_stored(self, as_admin: httpx.AsyncClient) -> None:
        form = WHATSAPP | {"template_name": ""}
        response = await post_form(as_admin, "/console/campaigns", form, [("meses_vencidos", ">=", "1")])
        assert response.status_code == 422
        assert "Escribe el nombre de la plantilla aprobada por Meta." in response.text
        assert 'value="Recordatorio de pago"' in response.text
        assert "Todavía no hay campañas." in (await as_admin.get("/console/campaigns")).text

    async def test_a_filter_without_conditions_is_refused(self, as_admin: httpx.AsyncClient) -> None:
        response = await post_form(as_admin, "/console/campaigns/preview", WHATSAPP)
        assert response.status_code == 422
        assert "Elige al menos un campo en las condiciones" in response.text

    async def test_a_list_without_a_file_is_refused(self, as_admin: httpx.AsyncClient) -> None:
        response = await post_form(as_admin, "/console/campaigns/preview", WHATSAPP | {"audience": "list"})
        assert response.status_code == 422
        assert "Elige el archivo con los teléfonos o correos." in response.text


class TestSending:
    async def test_start_follow_and_complete(self, as_admin: httpx.AsyncClient, graph: GraphTemplates) -> None:
        campaign_id = await create(as_admin, [("meses_vencidos", ">=", "1")])
        page = await as_admin.get(f"/console/campaigns/{campaign_id}")
        assert "Borrador" in page.text
        assert 'max="3" value="1"' in page.text  # Dario's number is skipped from the start
        assert "hx-trigger" not in page.text
        assert (await act(as_admin, campaign_id, "start")).status_code == 303
        page = await as_admin.get(f"/console/campaigns/{campaign_id}")
        assert "Enviando" in page.text
        assert f'hx-get="/console/campaigns/{campaign_id}/progress?shown=running"' in page.text
        await run_until_idle(as_admin)
        progress = await as_admin.get(f"/console/campaigns/{campaign_id}/progress", params={"shown": "running"})
        # Completed since the page was drawn: htmx reloads the whole page.
        assert progress.headers.get("HX-Refresh") == "true"
        page = await as_admin.get(f"/console/campaigns/{campaign_id}")
        assert "Terminada" in page.text
        assert '<dd data-count="sent">2</dd>' in page.text
        assert len(graph.sent) == 2

    async def test_the_progress_fragment_while_running(self, as_admin: httpx.AsyncClient) -> None:
        campaign_id = await create(as_admin, [("meses_vencidos", ">=", "1")])
        await act(as_admin, campaign_id, "start")
        progress = await as_admin.get(f"/console/campaigns/{campaign_id}/progress", params={"shown": "running"})
        assert progress.status_code == 200
        assert progress.text.lstrip().startswith("{#") is False
        assert '<section id="progress"' in progress.text
        assert '<dd data-count="pending">2</dd>' in progress.text
        assert "<html" not in progress.text

    async def test_pause_resume_and_cancel(self, as_admin: httpx.AsyncClient, graph: GraphTemplates) -> None:
        campaign_id = await create(as_admin, [("meses_vencidos", ">=", "1")])
        await act(as_admin, campaign_id, "start")
        await act(as_admin, campaign_id, "pause")
        await runner(as_admin).campaigns.run_once()
        page = await as_admin.get(f"/console/campaigns/{campaign_id}")
        assert "En pausa" in page.text
        assert graph.sent == []
        assert (await act(as_admin, campaign_id, "resume")).status_code == 303
        assert "Enviando" in (await as_admin.get(f"/console/campaigns/{campaign_id}")).text
        assert (await act(as_admin, campaign_id, "cancel")).status_code == 303
        page = await as_admin.get(f"/console/campaigns/{campaign_id}")
        assert "Cancelada" in page.text
        assert "cancelado: 2" in page.text
        await runner(as_admin).campaigns.run_once()
        assert graph.sent == []

    async def test_an_action_that_no_longer_applies_says_so(self, as_admin: httpx.AsyncClient) -> None:
        campaign_id = await create(as_admin, [("meses_vencidos", ">=", "1")])
        response = await act(as_admin, campaign_id, "pause")
        assert response.status_code == 409
        assert "esta acción ya no aplica" in response.text

    async def test_an_unknown_campaign_is_a_404_page(self, as_admin: httpx.AsyncClient) -> None:
        response = await as_admin.get("/console/campaigns/00000000-0000-0000-0000-000000000000")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")

    async def test_the_campaign_page_is_in_english_too(self, as_admin: httpx.AsyncClient) -> None:
        campaign_id = await create(as_admin, [("meses_vencidos", ">=", "1")])
        as_admin.cookies.set("bedel_lang", "en", path="/console")
        page = await as_admin.get(f"/console/campaigns/{campaign_id}")
        assert "Draft" in page.text
        assert ">Start</button>" in page.text

    async def test_the_list_shows_each_campaign(self, as_admin: httpx.AsyncClient) -> None:
        campaign_id = await create(as_admin, [("meses_vencidos", ">=", "1")])
        page = await as_admin.get("/console/campaigns")
        assert f'href="/console/campaigns/{campaign_id}">Recordatorio de pago</a>' in page.text
        assert "1 de 3 (enviados 0, fallidos 0)" in page.text


class TestFailures:
    async def test_are_listed_with_their_reasons_and_downloaded_as_safe_csv(
        self, as_admin: httpx.AsyncClient, graph: GraphTemplates
    ) -> None:
        # Meta refuses Ana's number for good (131026: undeliverable).
        graph.failures["525511112222"] = graph_error(400, 131026, "Message undeliverable")
        campaign_id = await create(as_admin, [("meses_vencidos", ">=", "1")])
        await act(as_admin, campaign_id, "start")
        await run_until_idle(as_admin)
        page = await as_admin.get(f"/console/campaigns/{campaign_id}")
        assert '<dd data-count="failed">1</dd>' in page.text
        assert "+525511112222</th>" in page.text
        download = await as_admin.get(f"/console/campaigns/{campaign_id}/failures.csv")
        assert download.status_code == 200
        assert download.headers["content-type"].startswith("text/csv")
        assert download.headers["content-disposition"].startswith("attachment;")
        rows = list(csv.reader(io.StringIO(download.text)))
        assert rows[0] == ["address", "phone", "error", "error_code", "attempts", "sent_at"]
        assert len(rows) == 2
        # A phone starts with "+": a spreadsheet would read it as a formula.
        assert rows[1][0] == "'+525511112222"
        assert all(not cell.startswith(("=", "+", "-", "@")) for cell in rows[1])

    async def test_are_shown_a_page_at_a_time(self, as_admin: httpx.AsyncClient, graph: GraphTemplates) -> None:
        graph.failures["525511112222"] = graph_error(400, 131026, "Message undeliverable")
        campaign_id = await create(as_admin, [("meses_vencidos", ">=", "1")])
        await act(as_admin, campaign_id, "start")
        await run_until_idle(as_admin)
        later = await as_admin.get(f"/console/campaigns/{campaign_id}", params={"after": 10_000})
        assert later.status_code == 200
        assert "No hay más fallas." in later.text
        assert f'href="/console/campaigns/{campaign_id}">Primeras fallas</a>' in later.text
