"""Campaigns over HTTP, for staff: dry run, create, start, pause, resume, cancel, progress, failures."""

import uuid
from typing import Annotated, Literal, Protocol, cast

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response, status

from bedel.audit import service as audit
from bedel.audit.models import Action
from bedel.auth import StaffCaller, StaffOnly
from bedel.campaigns import service
from bedel.campaigns.models import CampaignChannel, RecipientStatus
from bedel.campaigns.outbox import Outbox
from bedel.campaigns.runner import CampaignRunner
from bedel.campaigns.schemas import CampaignCreate, CampaignOut, Preview, RecipientPage
from bedel.dependencies import CoreState, DBSession, get_state
from bedel.paging import MAX_INT64, MAX_OFFSET
from bedel.students.fields import FieldCatalog

router = APIRouter(prefix="/campaigns", tags=["campaigns"], dependencies=[StaffOnly])


class CampaignsState(CoreState, Protocol):
    """What /campaigns reads from the app's state."""

    catalog: FieldCatalog
    outboxes: dict[CampaignChannel, Outbox]
    campaigns: CampaignRunner


def _state(request: Request) -> CampaignsState:
    return cast(CampaignsState, get_state(request))


@router.post(
    "",
    response_model=CampaignOut | Preview,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": Preview, "description": "The dry run: nothing stored"}},
)
async def create_campaign(
    body: CampaignCreate, request: Request, session: DBSession, response: Response
) -> CampaignOut | Preview:
    """Write the campaign as a draft with its recipients, or with `dry_run` count them and render three samples."""
    state = _state(request)
    created = await service.create_campaign(session, body, state.catalog, set(state.outboxes))
    if isinstance(created, Preview):
        response.status_code = status.HTTP_200_OK
        return created
    return await service.describe(session, created, state.campaigns.rates)


@router.get("", response_model=list[CampaignOut])
async def list_campaigns(
    request: Request,
    session: DBSession,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[CampaignOut]:
    rates = _state(request).campaigns.rates
    return [await service.describe(session, c, rates) for c in await service.list_campaigns(session, limit, offset)]


@router.get("/{campaign_id}", response_model=CampaignOut)
async def get_campaign(campaign_id: uuid.UUID, request: Request, session: DBSession) -> CampaignOut:
    """Progress by status, skips by reason, the sending rate and the time left."""
    campaign = await service.get_campaign(session, campaign_id)
    return await service.describe(session, campaign, _state(request).campaigns.rates)


@router.post("/{campaign_id}/{action}", response_model=CampaignOut)
async def change_status(
    campaign_id: uuid.UUID,
    action: Literal["start", "pause", "resume", "cancel"],
    request: Request,
    session: DBSession,
    background: BackgroundTasks,
    caller: StaffCaller,
) -> CampaignOut:
    """`start` a draft, `pause` or `resume` sending, or `cancel` what is left (sent messages stay sent)."""
    state = _state(request)
    campaign = await service.change_status(session, campaign_id, action)
    await audit.record(session, caller, Action(f"campaign.{action}"), target=str(campaign_id))
    # Runs after the response, so after the commit: this process's workers start at once, others at their poll.
    background.add_task(state.campaigns.wake)
    return await service.describe(session, campaign, state.campaigns.rates)


@router.get("/{campaign_id}/recipients", response_model=RecipientPage)
async def list_recipients(
    campaign_id: uuid.UUID,
    session: DBSession,
    status: RecipientStatus | None = None,
    after: Annotated[int, Query(ge=0, le=MAX_INT64, description="Return recipients with an id greater than this.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> RecipientPage:
    """The ledger, e.g. `?status=failed` for the failures with their errors."""
    return await service.list_recipients(session, campaign_id, status, after, limit)
