import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, field_validator

from bedel.channels.models import Channel
from bedel.channels.ports import Button
from bedel.delivery import DeliveryStatus
from bedel.identities.schemas import Identity


class VendorPayload(BaseModel):
    """A webhook body's part as a vendor sends it. Vendors add fields over time: unknown ones are
    ignored. A NUL character means nothing in a message and PostgreSQL cannot store it: dropped."""

    model_config = ConfigDict(extra="ignore")

    @field_validator("*", mode="after")
    @classmethod
    def _without_nul(cls, value: object) -> object:
        return value.replace("\x00", "") if isinstance(value, str) else value


class MediaKind(StrEnum):
    audio = "audio"
    image = "image"
    document = "document"


@dataclass(frozen=True)
class InboundMedia:
    """A file attached to a student message, as the vendor announced it (not downloaded yet)."""

    kind: MediaKind
    mime_type: str
    ref: str  # Meta's media id, or Twilio's media URL
    caption: str | None = None
    filename: str | None = None


@dataclass(frozen=True)
class Inbound:
    """One student message as a vendor delivered it, already verified and parsed."""

    channel: Channel
    external_id: str  # wamid or MessageSid: the same message always carries the same id
    address: str  # where to reply, in a form the vendor accepts
    # Canonical, or the anonymous key of a business-scoped id when the message carried no phone.
    phone: str
    text: str | None  # None: not text (a voice note, a file, or a kind Bedel does not read)
    sent_at: datetime
    media: InboundMedia | None = None
    # Every vendor identifier of the sender the message carried (raw wa_id, business-scoped id, Twilio From).
    identities: tuple[Identity, ...] = ()
    button: str | None = None  # the id of the reply button the student tapped (its title is the text)


@dataclass(frozen=True)
class Delivery:
    """One outbound text over a channel, optionally carrying a message of the thread."""

    channel: Channel
    address: str
    phone: str
    text: str
    message_id: uuid.UUID | None = None
    # Reply buttons under the text, with `footer` as their question; dropped when the text is too long for them.
    buttons: tuple[Button, ...] = ()
    footer: str = ""


@dataclass(frozen=True)
class Receipt:
    """A vendor's word on an outbound message: sent, delivered, read or failed (with its error code)."""

    vendor_message_id: str
    status: DeliveryStatus
    error_code: str | None = None
    error_detail: str = ""
