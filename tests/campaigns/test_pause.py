"""Pause means pause: once a pause, hold or cancel is answered, no further send of the campaign starts, even
from a batch already leased or from a worker already waiting for its turn on the channel's schedule."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bedel.campaigns.models import CampaignChannel, SendRate
from bedel.campaigns.repository import CampaignRepository
from bedel.campaigns.runner import IN_FLIGHT
from bedel.config import Settings
from bedel.db import utcnow
from bedel.state import AppState
from tests.campaigns.provider import FakeGraph, fake_graph
from tests.campaigns.samples import reminder
from tests.polling import eventually

App = tuple[httpx.AsyncClient, AppState]
# Three rounds of sends in flight: the first is held at the provider while the test acts.
RECIPIENTS = 3 * IN_FLIGHT


@pytest.fixture
def rate() -> float:
    return 0.0


@pytest.fixture
async def provider() -> AsyncIterator[FakeGraph]:
    async with fake_graph(hold=asyncio.Event()) as graph:
        yield graph


@pytest.fixture
def campaign_settings(campaign_settings: Settings, provider: FakeGraph, rate: float) -> Settings:
    return campaign_settings.model_copy(update={"whatsapp_api_base": provider.base, "campaign_rate_whatsapp": rate})


async def _started(client: httpx.AsyncClient) -> dict[str, Any]:
    listed = [f"+52 55 3000 {n:04d}" for n in range(RECIPIENTS)]
    body = reminder(audience={"recipients": listed}, message={"template": {"name": "aviso"}})
    campaign: dict[str, Any] = (await client.post("/campaigns", json=body)).json()
    assert (await client.post(f"/campaigns/{campaign['id']}/start")).status_code == 200
    return campaign


async def _hold(state: AppState, campaign_id: str) -> None:
    """What another worker's batch does when it finds an outage."""
    async with state.sessionmaker() as session, session.begin():
        until = utcnow() + timedelta(minutes=5)
        await CampaignRepository.from_session(session).hold(uuid.UUID(campaign_id), until, "Service unavailable")


async def _progress(client: httpx.AsyncClient, campaign: dict[str, Any]) -> dict[str, Any]:
    progress: dict[str, Any] = (await client.get(f"/campaigns/{campaign['id']}")).json()["progress"]
    return progress


async def _batch_in_flight(state: AppState, provider: FakeGraph) -> asyncio.Task[bool]:
    """A batch leased and being sent, its first sends held at the provider."""
    batch = asyncio.create_task(state.campaigns.run_once())
    await eventually(lambda: provider.arrived == IN_FLIGHT)
    return batch


class TestAPauseStopsALeasedBatch:
    async def test_no_send_starts_after_the_pause_is_answered_and_the_rest_waits_for_resume(
        self, app: App, provider: FakeGraph
    ) -> None:
        client, state = app
        campaign = await _started(client)
        batch = await _batch_in_flight(state, provider)

        paused = await client.post(f"/campaigns/{campaign['id']}/pause")
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
        assert provider.hold is not None
        provider.hold.set()
        assert await batch

        assert provider.arrived == IN_FLIGHT
        progress = await _progress(client, campaign)
        assert (progress["sent"], progress["pending"], progress["sending"]) == (IN_FLIGHT, RECIPIENTS - IN_FLIGHT, 0)
        pending = (await client.get(f"/campaigns/{campaign['id']}/recipients?status=pending")).json()["items"]
        assert {item["attempts"] for item in pending} == {0}
        assert not await state.campaigns.run_once()

        await client.post(f"/campaigns/{campaign['id']}/resume")
        while await state.campaigns.run_once():
            pass
        assert (await _progress(client, campaign))["sent"] == RECIPIENTS
        assert len(provider.accepted) == RECIPIENTS and set(provider.accepted.values()) == {1}


class TestAHoldStopsALeasedBatch:
    async def test_no_send_starts_after_another_batch_held_the_campaign(self, app: App, provider: FakeGraph) -> None:
        client, state = app
        campaign = await _started(client)
        batch = await _batch_in_flight(state, provider)

        await _hold(state, campaign["id"])
        assert provider.hold is not None
        provider.hold.set()
        assert await batch

        assert provider.arrived == IN_FLIGHT
        progress = await _progress(client, campaign)
        assert (progress["sent"], progress["pending"]) == (IN_FLIGHT, RECIPIENTS - IN_FLIGHT)


class TestACancelStopsALeasedBatch:
    async def test_what_the_batch_did_not_send_is_skipped_as_cancelled(self, app: App, provider: FakeGraph) -> None:
        client, state = app
        campaign = await _started(client)
        batch = await _batch_in_flight(state, provider)

        cancelled = await client.post(f"/campaigns/{campaign['id']}/cancel")
        assert cancelled.json()["status"] == "cancelled"
        assert provider.hold is not None
        provider.hold.set()
        assert await batch

        assert provider.arrived == IN_FLIGHT
        progress = await _progress(client, campaign)
        assert (progress["sent"], progress["pending"], progress["sending"]) == (IN_FLIGHT, 0, 0)
        assert progress["skipped_by_reason"] == {"cancelled": RECIPIENTS - IN_FLIGHT}


@pytest.mark.parametrize("rate", [1.0])
class TestTheLeaseChecksTheCampaign:
    """A worker finds a running campaign, then waits for its turn on the schedule, then leases."""

    async def _waiting_for_turn(self, state: AppState, provider: FakeGraph) -> asyncio.Task[bool]:
        assert provider.hold is not None
        provider.hold.set()
        channel = CampaignChannel.whatsapp_template
        # Another worker has the next 3 s of the schedule, so this one's turn comes after them.
        async with state.sessionmaker() as session, session.begin():
            taken_until = 3.0 + await CampaignRepository.from_session(session).reserve_sends(channel, 3.0, time.time())
        waiting = asyncio.create_task(state.campaigns.run_once())

        async def booked() -> bool:
            async with state.sessionmaker() as session:
                next_free = await session.scalar(select(SendRate.next_free_s).where(SendRate.channel == channel))
            return next_free is not None and next_free > taken_until

        await eventually(booked)
        return waiting

    async def test_a_pause_answered_during_the_wait_holds(self, app: App, provider: FakeGraph) -> None:
        client, state = app
        campaign = await _started(client)
        waiting = await self._waiting_for_turn(state, provider)

        assert (await client.post(f"/campaigns/{campaign['id']}/pause")).json()["status"] == "paused"
        assert not await waiting
        assert provider.arrived == 0
        assert (await _progress(client, campaign))["pending"] == RECIPIENTS

    async def test_a_hold_set_during_the_wait_holds(self, app: App, provider: FakeGraph) -> None:
        client, state = app
        campaign = await _started(client)
        waiting = await self._waiting_for_turn(state, provider)

        await _hold(state, campaign["id"])
        assert not await waiting
        assert provider.arrived == 0
        assert (await _progress(client, campaign))["pending"] == RECIPIENTS
