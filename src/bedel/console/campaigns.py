"""Campaigns (admins only): build the audience, preview the dry run, start, pause, resume or cancel,
follow the progress, and read or download the failures. The rules are the campaigns service's."""

import csv
import io
import re
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal, cast

from fastapi import BackgroundTasks, File, Query, Request, Response, UploadFile
from pydantic import ValidationError

from bedel.audit import service as audit
from bedel.audit.models import Action
from bedel.campaigns import service
from bedel.campaigns.audience import Condition, Operator, write_filter
from bedel.campaigns.endpoints import CampaignsState
from bedel.campaigns.models import CampaignChannel, CampaignStatus, RecipientStatus
from bedel.campaigns.schemas import MAX_RECIPIENTS, CampaignCreate, CampaignOut, Preview
from bedel.console.auth import AdminOnly, console_caller, console_router
from bedel.console.catalogue import strings
from bedel.console.rendering import page_language, render, see_other
from bedel.dependencies import DBSession, get_state
from bedel.errors import BedelError, Conflict, InvalidInput
from bedel.users.models import StaffUser

router = console_router()

PAGE = "/console/campaigns"
LISTED = 20
FAILURES_SHOWN = 50
CSV_PAGE = 1000
# The builder shows this many empty conditions besides those already filled in.
SPARE_CONDITIONS = 2
# A listed address ends at a line, a comma, a semicolon or a tab (phones may contain spaces).
_LIST_SEPARATORS = re.compile(r"[\r\n,;\t]+")
_FORM_FIELDS = (
    "name",
    "channel",
    "text",
    "subject",
    "template_name",
    "template_language",
    "template_parameters",
    "audience",
)
# A spreadsheet would run a cell starting with these as a formula (OWASP's CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _state(request: Request) -> CampaignsState:
    return cast(CampaignsState, get_state(request))


@router.get("/campaigns")
async def campaigns_page(
    request: Request, session: DBSession, admin: AdminOnly, offset: Annotated[int, Query(ge=0)] = 0
) -> Response:
    rates = _state(request).campaigns.rates
    # One more than shown: whether there is an older page.
    found = await service.list_campaigns(session, LISTED + 1, offset)
    campaigns = [await service.describe(session, campaign, rates) for campaign in found[:LISTED]]
    return render(
        request,
        "campaigns.html",
        user=admin,
        campaigns=campaigns,
        offset=offset,
        listed=LISTED,
        more=len(found) > LISTED,
    )


@router.get("/campaigns/new")
async def new_campaign_page(request: Request, session: DBSession, admin: AdminOnly) -> Response:
    return await _new_page(request, session, admin, form={})


@router.post("/campaigns/preview")
async def preview_campaign(
    request: Request,
    session: DBSession,
    admin: AdminOnly,
    recipients_file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    form = await _form_values(request)
    try:
        spec = await _spec(form, recipients_file, _words(request), dry_run=True)
        preview = await service.create_campaign(session, spec, _state(request).catalog, set(_state(request).outboxes))
    except BedelError as exc:
        return await _new_page(request, session, admin, form=form, error=exc)
    assert isinstance(preview, Preview)
    return await _new_page(request, session, admin, form=form, preview=preview, expression=spec.audience.filter)


@router.post("/campaigns")
async def create_campaign(
    request: Request,
    session: DBSession,
    admin: AdminOnly,
    recipients_file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    form = await _form_values(request)
    try:
        spec = await _spec(form, recipients_file, _words(request), dry_run=False)
        campaign = await service.create_campaign(session, spec, _state(request).catalog, set(_state(request).outboxes))
    except BedelError as exc:
        return await _new_page(request, session, admin, form=form, error=exc)
    assert not isinstance(campaign, Preview)
    return see_other(f"{PAGE}/{campaign.id}")


@router.get("/campaigns/{campaign_id}")
async def campaign_page(
    request: Request,
    session: DBSession,
    admin: AdminOnly,
    campaign_id: uuid.UUID,
    after: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    return await _campaign_page(request, session, admin, campaign_id, after)


async def _campaign_page(
    request: Request,
    session: DBSession,
    admin: StaffUser,
    campaign_id: uuid.UUID,
    after: int,
    *,
    error: BedelError | None = None,
) -> Response:
    """The campaign, its live progress and a page of its failures; after a refused action, why."""
    campaign = await service.describe(
        session, await service.get_campaign(session, campaign_id), _state(request).campaigns.rates
    )
    failures = await service.list_recipients(session, campaign_id, RecipientStatus.failed, after, FAILURES_SHOWN)
    return render(
        request,
        "campaign.html",
        user=admin,
        status_code=error.status if error else 200,
        here=f"{PAGE}/{campaign_id}",
        campaign=campaign,
        failures=failures,
        after=after,
        time_left=_time_left(request, campaign),
        error=strings(page_language(request))["campaigns_error_status"] if error else None,
    )


@router.get("/campaigns/{campaign_id}/progress")
async def campaign_progress(
    request: Request,
    session: DBSession,
    admin: AdminOnly,
    campaign_id: uuid.UUID,
    shown: Annotated[CampaignStatus | None, Query()] = None,
) -> Response:
    """The progress bar alone, polled by the page; when the status changed (it completed), the whole page."""
    campaign = await service.describe(
        session, await service.get_campaign(session, campaign_id), _state(request).campaigns.rates
    )
    if shown is not None and shown != campaign.status:
        return Response(headers={"HX-Refresh": "true"})
    return render(
        request,
        "campaign_progress.html",
        user=admin,
        here=f"{PAGE}/{campaign_id}",
        campaign=campaign,
        time_left=_time_left(request, campaign),
    )


@router.post("/campaigns/{campaign_id}/{action}")
async def change_status(
    request: Request,
    session: DBSession,
    admin: AdminOnly,
    background: BackgroundTasks,
    campaign_id: uuid.UUID,
    action: Literal["start", "pause", "resume", "cancel"],
) -> Response:
    try:
        await service.change_status(session, campaign_id, action)
    except Conflict as exc:
        # Someone else (or the campaign finishing) changed it since this page was drawn.
        return await _campaign_page(request, session, admin, campaign_id, 0, error=exc)
    await audit.record(session, console_caller(request, admin), Action(f"campaign.{action}"), target=str(campaign_id))
    # After the response, so after the commit: this process's senders start at once.
    background.add_task(_state(request).campaigns.wake)
    return see_other(f"{PAGE}/{campaign_id}")


@router.get("/campaigns/{campaign_id}/failures.csv")
async def failures_csv(session: DBSession, admin: AdminOnly, campaign_id: uuid.UUID) -> Response:
    campaign = await service.get_campaign(session, campaign_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["address", "phone", "error", "error_code", "attempts", "sent_at"])
    after = 0
    while True:
        page = await service.list_recipients(session, campaign_id, RecipientStatus.failed, after, CSV_PAGE)
        for item in page.items:
            row = [item.address, item.phone, item.error, item.delivery_error_code, item.attempts, item.sent_at]
            writer.writerow([_cell(value) for value in row])
        if page.next_after is None:
            break
        after = page.next_after
    filename = f"fallas-{campaign.id}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: a formula's first character gets an apostrophe before it."""
    text = "" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


async def _form_values(request: Request) -> dict[str, Any]:
    """The builder's fields as typed, to validate and to show again; the conditions as rows."""
    form = await request.form()
    values: dict[str, Any] = {name: str(form.get(name) or "") for name in _FORM_FIELDS}
    fields, operators, typed = (form.getlist(name) for name in ("field", "operator", "value"))
    values["conditions"] = [
        {"field": str(field), "operator": str(operator), "value": str(value)}
        for field, operator, value in zip(fields, operators, typed, strict=False)
        if str(field)
    ]
    return values


def _words(request: Request) -> Mapping[str, str]:
    return strings(page_language(request))


def _missing(form: dict[str, Any]) -> str | None:
    """What the form lacks, as a word of the page: said in the staff's language, not the API's."""
    channel = form["channel"]
    if not form["name"].strip():
        return "campaigns_need_name"
    if channel == CampaignChannel.whatsapp_template and not form["template_name"].strip():
        return "campaigns_need_template"
    if channel == CampaignChannel.email and not form["subject"].strip():
        return "campaigns_need_subject"
    if channel in (CampaignChannel.sms, CampaignChannel.email) and not form["text"].strip():
        return "campaigns_need_text"
    if form["audience"] != "list" and not form["conditions"]:
        return "campaigns_need_condition"
    return None


async def _spec(
    form: dict[str, Any], upload: UploadFile | None, words: Mapping[str, str], *, dry_run: bool
) -> CampaignCreate:
    missing = _missing(form)
    if missing is not None:
        raise InvalidInput(words[missing])
    channel = form["channel"]
    message: dict[str, Any]
    if channel == CampaignChannel.whatsapp_template:
        parameters = [line.strip() for line in form["template_parameters"].splitlines() if line.strip()]
        message = {
            "template": {
                "name": form["template_name"],
                "language": form["template_language"] or "es_MX",
                "parameters": parameters,
            }
        }
    else:
        message = {"text": form["text"] or None}
        if channel == CampaignChannel.email:
            message["subject"] = form["subject"] or None
    audience: dict[str, Any]
    if form["audience"] == "list":
        audience = {"recipients": await _listed(upload, words)}
    else:
        try:
            conditions = [
                Condition(row["field"], Operator(row["operator"]), row["value"]) for row in form["conditions"]
            ]
        except ValueError:
            raise InvalidInput(words["campaigns_need_operator"], field="audience.filter") from None
        audience = {"filter": write_filter(conditions)}
    try:
        return CampaignCreate.model_validate(
            {"name": form["name"], "channel": channel, "message": message, "audience": audience, "dry_run": dry_run}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"] if not isinstance(part, int))
        raise InvalidInput(first["msg"], field=where) from None


async def _listed(upload: UploadFile | None, words: Mapping[str, str]) -> list[str]:
    """The phones and emails of an uploaded list: a text or CSV file, one per line or cell."""
    if upload is None or not upload.filename:
        raise InvalidInput(words["campaigns_need_file"], field="audience.recipients")
    raw = await upload.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # What Excel writes for "CSV" on Windows in Spanish.
        text = raw.decode("cp1252", errors="replace")
    items = [item.strip().strip('"') for item in _LIST_SEPARATORS.split(text)]
    items = [item for item in items if item]
    if not items:
        raise InvalidInput(words["campaigns_empty_file"], field="audience.recipients")
    if len(items) > MAX_RECIPIENTS:
        raise InvalidInput(words["campaigns_long_file"].format(n=MAX_RECIPIENTS), field="audience.recipients")
    return items


def _time_left(request: Request, campaign: CampaignOut) -> str | None:
    if campaign.eta_s is None or campaign.status not in (CampaignStatus.running, CampaignStatus.draft):
        return None
    words = strings(page_language(request))
    seconds = round(campaign.eta_s)
    if seconds < 90:
        return words["campaigns_seconds"].format(n=max(1, seconds))
    if seconds < 90 * 60:
        return words["campaigns_minutes"].format(n=round(seconds / 60))
    return words["campaigns_hours"].format(n=round(seconds / 3600, 1))


async def _new_page(
    request: Request,
    session: DBSession,
    admin: StaffUser,
    *,
    form: dict[str, Any],
    preview: Preview | None = None,
    expression: str | None = None,
    error: BedelError | None = None,
) -> Response:
    state = _state(request)
    words = strings(page_language(request))
    fields = await service.filter_fields(session, state.catalog)
    channels = [channel for channel in CampaignChannel if channel in state.outboxes]
    rows = form.get("conditions") or []
    return render(
        request,
        "campaign_new.html",
        user=admin,
        status_code=error.status if error else 200,
        here=f"{PAGE}/new",
        form=dict.fromkeys(_FORM_FIELDS, "")
        | {"channel": channels[0] if channels else "", "audience": "filter", "template_language": "es_MX"}
        | {key: value for key, value in form.items() if value},
        conditions=[*rows, *({"field": "", "operator": "==", "value": ""} for _ in range(SPARE_CONDITIONS))],
        fields=fields,
        operators=list(Operator),
        channels=channels,
        preview=preview,
        expression=expression,
        error=(words.get(f"campaigns_error_{error.code}", "") + " " + error.message).strip() if error else None,
    )
