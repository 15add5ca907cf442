"""`bedel campaigns ...`: the campaigns API on the command line, through the same service functions."""

import asyncio
import csv
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bedel.campaigns import service
from bedel.campaigns.models import CampaignChannel, CampaignStatus, RecipientStatus, SkipReason
from bedel.campaigns.outbox import create_outboxes
from bedel.campaigns.runner import CampaignLimits
from bedel.campaigns.schemas import CampaignCreate, CampaignOut, Preview, Progress
from bedel.commands import EXIT_INPUT, fail, in_transaction, run
from bedel.config import Settings
from bedel.db import create_sessionmaker, utcnow
from bedel.ops.logging import configure_logging
from bedel.paging import MAX_OFFSET
from bedel.students.fields import FieldCatalog, load_field_catalog

WATCH_POLL_S = 1.0
FAILURES_PAGE = 1000
FINISHED = {CampaignStatus.completed, CampaignStatus.cancelled}

T = TypeVar("T")
Action = Literal["start", "pause", "resume", "cancel"]
CampaignId = Annotated[uuid.UUID, typer.Argument(help="The campaign's id, as `create` and `list` print it")]

app = typer.Typer(help="Bulk messages to students (WhatsApp templates, SMS, email)", no_args_is_help=True)


@dataclass(frozen=True)
class Setup:
    """What the commands share with the API: the database, the field catalog, the configured channels, their rates."""

    sessionmaker: async_sessionmaker[AsyncSession]
    catalog: FieldCatalog
    channels: set[CampaignChannel]
    rates: Mapping[CampaignChannel, float]


@app.command()
def create(
    name: Annotated[str | None, typer.Option(help="What staff call it (required)")] = None,
    channel: Annotated[str | None, typer.Option(help="whatsapp_template, sms or email (required)")] = None,
    text: Annotated[str | None, typer.Option(help="SMS or email body; Jinja2 over student fields")] = None,
    subject: Annotated[str | None, typer.Option(help="Email subject; Jinja2 over student fields")] = None,
    template: Annotated[str | None, typer.Option(help="An approved WhatsApp template (or Twilio Content SID)")] = None,
    language: Annotated[str, typer.Option(help="The template's language")] = "es_MX",
    param: Annotated[list[str] | None, typer.Option(help="A template parameter, in order; repeatable")] = None,
    filter_: Annotated[
        str | None, typer.Option("--filter", help='Students matching, e.g. "meses_vencidos >= 1"')
    ] = None,
    recipients: Annotated[
        Path | None,
        typer.Option(help="A file of phones or emails, one per line, or a CSV's first column (header skipped)"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count and show three samples; store nothing")] = False,
) -> None:
    """Write a draft campaign with its recipients (start it with `start`), or with --dry-run preview it."""
    message: dict[str, Any] = {"text": text, "subject": subject}
    if template is not None or param:
        message["template"] = {"name": template, "language": language, "parameters": param or []}
    audience = {"filter": filter_, "recipients": _read_recipients(recipients) if recipients else None}
    body = {"name": name, "channel": channel, "message": message, "audience": audience, "dry_run": dry_run}
    try:
        spec = CampaignCreate.model_validate(_without_none(body))
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            typer.echo(f"error: {where + ': ' if where else ''}{error['msg'].removeprefix('Value error, ')}", err=True)
        raise typer.Exit(EXIT_INPUT) from None

    async def write(setup: Setup, session: AsyncSession) -> CampaignOut | Preview:
        created = await service.create_campaign(session, spec, setup.catalog, setup.channels)
        if isinstance(created, Preview):
            return created
        return await service.describe(session, created, setup.rates)

    result = _run(write)
    if isinstance(result, Preview):
        _print_preview(result)
        return
    _print_campaign(result)
    typer.echo(f"created as a draft; send it with: bedel campaigns start {result.id}")


@app.command("list")
def list_campaigns(
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    offset: Annotated[int, typer.Option(min=0, max=MAX_OFFSET)] = 0,
) -> None:
    """Campaigns, newest first, with their progress."""

    async def read(setup: Setup, session: AsyncSession) -> list[CampaignOut]:
        campaigns = await service.list_campaigns(session, limit, offset)
        return [await service.describe(session, campaign, setup.rates) for campaign in campaigns]

    for campaign in _run(read):
        progress = campaign.progress
        typer.echo(
            f"{campaign.id}  {campaign.status:<9}  {campaign.channel:<17}  "
            f"{_done(progress)}/{progress.total} done  {campaign.name}"
        )


@app.command()
def show(campaign_id: CampaignId) -> None:
    """A campaign's progress: recipients by status, skips by reason, the sending rate and the time left."""
    _print_campaign(_run(lambda setup, session: _describe(setup, session, campaign_id)))


@app.command()
def start(campaign_id: CampaignId) -> None:
    """Start sending a draft; `bedel worker` processes (or `bedel serve`) send it."""
    _change(campaign_id, "start")


@app.command()
def pause(campaign_id: CampaignId) -> None:
    """Stop sending for now; a batch already being sent finishes."""
    _change(campaign_id, "pause")


@app.command()
def resume(campaign_id: CampaignId) -> None:
    """Go on sending a paused campaign."""
    _change(campaign_id, "resume")


@app.command()
def cancel(campaign_id: CampaignId) -> None:
    """Skip whatever is not sent yet (sent messages stay sent)."""
    _change(campaign_id, "cancel")


@app.command()
def failures(campaign_id: CampaignId) -> None:
    """Every recipient that failed for good, with the error."""

    async def read(setup: Setup, session: AsyncSession) -> int:
        count, after = 0, 0
        while True:
            page = await service.list_recipients(session, campaign_id, RecipientStatus.failed, after, FAILURES_PAGE)
            for recipient in page.items:
                typer.echo(f"{recipient.address or recipient.phone}  attempts={recipient.attempts}  {recipient.error}")
            count += len(page.items)
            if page.next_after is None:
                return count
            after = page.next_after

    count = _run(read)
    typer.echo(f"{count} failed")


@app.command()
def watch(campaign_id: CampaignId) -> None:
    """A progress bar of the campaign, polled every second until it is completed or cancelled."""
    campaign = _run_with_setup(lambda setup: _watch(setup, campaign_id))
    typer.echo(f"{campaign.status}, {_counts(campaign.progress)}")


async def _watch(setup: Setup, campaign_id: uuid.UUID) -> CampaignOut:
    async def poll() -> CampaignOut:
        return await _transaction(setup, lambda setup, session: _describe(setup, session, campaign_id))

    campaign = await poll()
    with typer.progressbar(length=campaign.progress.total, label=_label(campaign)) as bar:
        while True:
            bar.label = _label(campaign)
            bar.update(_done(campaign.progress) - bar.pos)
            bar.render_progress()
            if campaign.status in FINISHED:
                return campaign
            await asyncio.sleep(WATCH_POLL_S)
            campaign = await poll()


def _change(campaign_id: uuid.UUID, action: Action) -> None:
    async def change(setup: Setup, session: AsyncSession) -> CampaignOut:
        campaign = await service.change_status(session, campaign_id, action)
        # No wake-up here: workers find the change at their next poll (1 s).
        return await service.describe(session, campaign, setup.rates)

    _print_campaign(_run(change))


async def _describe(setup: Setup, session: AsyncSession, campaign_id: uuid.UUID) -> CampaignOut:
    campaign = await service.get_campaign(session, campaign_id)
    return await service.describe(session, campaign, setup.rates)


def _run(work: Callable[[Setup, AsyncSession], Awaitable[T]]) -> T:
    """Do `work` in one transaction, as a request would."""
    return _run_with_setup(lambda setup: _transaction(setup, work))


def _run_with_setup(work: Callable[[Setup], Awaitable[T]]) -> T:
    """Do `work` with the catalog, channels and rates the API has; a refusal or a broken set-up ends the command."""
    configure_logging()
    return run(lambda settings, engine: _with_setup(settings, engine, work))


async def _with_setup(settings: Settings, engine: AsyncEngine, work: Callable[[Setup], Awaitable[T]]) -> T:
    catalog = load_field_catalog(settings.fields_file)
    # Only to know which channels are configured, as the API knows it: nothing is sent through them.
    outboxes = create_outboxes(settings)
    try:
        setup = Setup(create_sessionmaker(engine), catalog, set(outboxes), CampaignLimits.from_settings(settings).rates)
        return await work(setup)
    finally:
        for outbox in outboxes.values():
            await outbox.aclose()


async def _transaction(setup: Setup, work: Callable[[Setup, AsyncSession], Awaitable[T]]) -> T:
    return await in_transaction(setup.sessionmaker, lambda session: work(setup, session))


def _read_recipients(path: Path) -> list[str]:
    """Each line's first cell; a first row with neither a digit nor an @ is a header ("telefono")."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        fail(EXIT_INPUT, f"cannot read {path}: {exc.strerror}")
    except UnicodeDecodeError:
        fail(EXIT_INPUT, f"{path}: not UTF-8 text; save it as UTF-8 (CSV UTF-8 in Excel)")
    cells = [row[0].strip() for row in csv.reader(text.splitlines()) if row and row[0].strip()]
    if cells and not any(char.isdigit() or char == "@" for char in cells[0]):
        return cells[1:]
    return cells


def _without_none(value: dict[str, Any]) -> dict[str, Any]:
    """Options not given are left out, so the schema says "required" rather than "not a string"."""
    return {
        key: _without_none(item) if isinstance(item, dict) else item for key, item in value.items() if item is not None
    }


def _done(progress: Progress) -> int:
    return progress.sent + progress.failed + progress.skipped


def _label(campaign: CampaignOut) -> str:
    if campaign.held_until is not None and campaign.held_until > utcnow():
        return f"{campaign.name} ({campaign.status}, held by an outage: {campaign.hold_reason})"
    return f"{campaign.name} ({campaign.status})"


def _counts(progress: Progress) -> str:
    return (
        f"recipients: {progress.total} total, {progress.pending} pending, {progress.sending} sending, "
        f"{progress.sent} sent, {progress.failed} failed, {progress.skipped} skipped"
        + _reasons(progress.skipped_by_reason)
    )


def _reasons(skipped: dict[SkipReason, int]) -> str:
    return f" ({', '.join(f'{reason} {count}' for reason, count in sorted(skipped.items()))})" if skipped else ""


def _print_campaign(campaign: CampaignOut) -> None:
    typer.echo(f"campaign {campaign.id}: {campaign.name}")
    typer.echo(f"  {campaign.channel}, {campaign.status}")
    typer.echo(f"  {_counts(campaign.progress)}")
    if campaign.started_at is not None and campaign.status not in FINISHED:
        left = "unknown" if campaign.eta_s is None else f"{campaign.eta_s} s"
        typer.echo(f"  sending {campaign.rate_per_s}/s, time left {left}")
    if campaign.held_until is not None:
        typer.echo(f"  held until {campaign.held_until.isoformat()}: {campaign.hold_reason}")


def _print_preview(preview: Preview) -> None:
    typer.echo(f"dry run, nothing stored: {preview.recipients} to send, {sum(preview.skipped.values())} skipped")
    for reason, count in sorted(preview.skipped.items()):
        typer.echo(f"  skipped {reason}: {count}")
    for sample in preview.samples:
        typer.echo(f"to {sample.to}:")
        if sample.subject is not None:
            typer.echo(f"  subject: {sample.subject}")
        for line in sample.text.splitlines():
            typer.echo(f"  {line}")
