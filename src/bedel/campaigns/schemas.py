import uuid
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from bedel.campaigns.models import CampaignChannel, CampaignStatus, RecipientStatus, SkipReason
from bedel.db import UTCDateTime
from bedel.delivery import DeliveryStatus

MAX_RECIPIENTS = 200_000
MAX_CAMPAIGN_BYTES = 16 * 1024 * 1024

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


class TemplateSpec(BaseModel):
    """A WhatsApp template approved by Meta (its name), or a Twilio Content SID (`HX...`) when Twilio sends."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=512)]
    language: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=15)] = "es_MX"
    # Jinja2 templates over the student's fields, one per {{n}} of the approved template body.
    parameters: list[Annotated[str, StringConstraints(max_length=1024)]] = Field(default=[], max_length=20)


class MessageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template: TemplateSpec | None = None
    subject: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)] | None = None
    text: Text | None = None


class AudienceSpec(BaseModel):
    """Exactly one of: a filter over student fields, or a list of phones and emails."""

    model_config = ConfigDict(extra="forbid")

    filter: Annotated[str, StringConstraints(max_length=2000)] | None = None
    recipients: list[Annotated[str, StringConstraints(max_length=320)]] | None = Field(
        default=None, min_length=1, max_length=MAX_RECIPIENTS
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.filter is None) == (self.recipients is None):
            raise ValueError('give either `filter` (e.g. "meses_vencidos >= 1") or `recipients`, not both')
        return self


class CampaignCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    channel: CampaignChannel
    message: MessageSpec
    audience: AudienceSpec
    # Count and render three samples; store nothing.
    dry_run: bool = False

    @model_validator(mode="after")
    def _message_fits_channel(self) -> Self:
        message = self.message
        if self.channel == CampaignChannel.whatsapp_template and (message.template is None or message.text):
            raise ValueError("a whatsapp_template campaign takes `message.template` (name, language, parameters)")
        if self.channel == CampaignChannel.sms and (message.text is None or message.template or message.subject):
            raise ValueError("an sms campaign takes `message.text` only")
        if self.channel == CampaignChannel.email and (message.text is None or message.subject is None):
            raise ValueError("an email campaign takes `message.subject` and `message.text`")
        if self.channel == CampaignChannel.email and message.template is not None:
            raise ValueError("an email campaign takes `message.subject` and `message.text`")
        return self


class Sample(BaseModel):
    to: str
    text: str
    subject: str | None = None
    template: str | None = None
    parameters: list[str] = []


class Preview(BaseModel):
    """What a campaign would do: how many it reaches, who it skips and why, and three rendered samples."""

    recipients: int
    skipped: dict[SkipReason, int]
    samples: list[Sample]


class Progress(BaseModel):
    total: int
    pending: int
    sending: int
    sent: int
    failed: int
    skipped: int
    skipped_by_reason: dict[SkipReason, int]
    # Of those sent, how many the vendor's receipts say reached the phone (delivered or read), and were read.
    delivered: int = 0
    read: int = 0


class CampaignOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    channel: CampaignChannel
    status: CampaignStatus
    message: dict[str, object]
    audience: dict[str, object]
    progress: Progress
    # Sends per second over the last minute.
    rate_per_s: float
    # Seconds until every pending recipient is sent at that rate (or the configured limit); None when unknown.
    eta_s: float | None
    held_until: UTCDateTime | None
    hold_reason: str | None
    created_at: UTCDateTime
    started_at: UTCDateTime | None
    finished_at: UTCDateTime | None


class RecipientOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    address: str | None
    phone: str | None
    status: RecipientStatus
    reason: SkipReason | None
    attempts: int
    error: str | None
    vendor_message_id: str | None
    sent_at: UTCDateTime | None
    # From the vendor's receipts: sent, delivered, read or failed (with `delivery_error_code`, and `error` in Spanish).
    delivery_status: DeliveryStatus | None
    delivery_error_code: str | None


class RecipientPage(BaseModel):
    items: list[RecipientOut]
    # Pass as `after` for the next page; None on the last one.
    next_after: int | None
