from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import respx

from bedel.config import Settings
from bedel.state import AppState
from tests.campaigns.provider import GraphTemplates
from tests.campaigns.samples import STUDENTS_CSV
from tests.channels.vendors import CHANNEL_SETTINGS


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


@pytest.fixture
def graph() -> Iterator[GraphTemplates]:
    with respx.mock(assert_all_called=False) as router:
        yield GraphTemplates(router)
