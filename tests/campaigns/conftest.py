import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import respx

from bedel.config import Settings
from bedel.state import AppState
from tests.channels.vendors import CHANNEL_SETTINGS, GRAPH_MESSAGES_URL

# Real Mexican mobile numbers' shapes: the ledger skips what a carrier could not deliver to.
STUDENTS_CSV = """matricula,nombre,telefono,correo,carrera,meses_vencidos,adeudo
A001,Ana Ruiz,+52 55 1111 2222,ana@alumnos.example.edu,Derecho,2,4500.00
A002,Beto Díaz,+52 55 3333 4444,,Derecho,1,1200.50
A003,Carla Gómez,+52 55 5555 6666,carla@alumnos.example.edu,Ingeniería,0,0
A004,Dario Paz,+52155667788,dario@alumnos.example.edu,Derecho,3,300
"""


@pytest.fixture
def retry_base_s() -> float:
    return 0.01


@pytest.fixture
def campaign_settings(make_settings: Callable[..., Settings], retry_base_s: float) -> Settings:
    # Campaign sending is driven step by step through run_once(), not by background lanes.
    return make_settings(
        **CHANNEL_SETTINGS
        | {"jobs_in_process": False, "campaign_rate_whatsapp": 0, "campaign_retry_base_s": retry_base_s},
        smtp_host="127.0.0.1",
        smtp_from="avisos@example.edu",
    )


@pytest.fixture
async def app(
    make_client: Callable[[Settings], Any], campaign_settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, AppState]]:
    harness = make_client(campaign_settings)
    async with harness as client:
        response = await client.post(
            "/students/import", files={"file": ("alumnos.csv", STUDENTS_CSV.encode(), "text/csv")}
        )
        assert response.status_code == 200, response.text
        yield client, harness.app.state.bedel


class GraphTemplates:
    """The Graph API's messages endpoint: records each template sent and answers like Meta does."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.sent: list[dict[str, Any]] = []
        self.failures: dict[str, httpx.Response] = {}
        router.post(GRAPH_MESSAGES_URL).mock(side_effect=self._answer)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        failure = self.failures.get(body["to"])
        if failure is not None:
            return failure
        self.sent.append(body)
        return httpx.Response(
            200,
            json={
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": f"wamid.HBgL{len(self.sent):08d}", "message_status": "accepted"}],
            },
        )


@pytest.fixture
def graph() -> Any:
    with respx.mock(assert_all_called=False) as router:
        yield GraphTemplates(router)


def reminder(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "Recordatorio de pago",
        "channel": "whatsapp_template",
        "message": {
            "template": {
                "name": "recordatorio_pago",
                "language": "es_MX",
                "parameters": ["{{ name }}", "{{ adeudo }}"],
            }
        },
        "audience": {"filter": "meses_vencidos >= 1"},
    } | overrides
