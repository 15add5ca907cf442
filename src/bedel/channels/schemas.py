import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bedel.channels.models import Channel


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
    address: str  # where to reply, in the vendor's own form
    phone: str  # canonical
    text: str | None  # None: not text (a voice note, a file, or a kind Bedel does not read)
    sent_at: datetime
    media: InboundMedia | None = None


@dataclass(frozen=True)
class Delivery:
    """One outbound text over a channel, optionally carrying a message of the thread."""

    channel: Channel
    address: str
    phone: str
    text: str
    message_id: uuid.UUID | None = None
