"""The parts of Meta's `messages` webhook that Bedel reads; everything else is ignored."""

from datetime import UTC, datetime

import structlog
from pydantic import BaseModel, ConfigDict, Field

from bedel.channels.models import Channel
from bedel.channels.schemas import Inbound, InboundMedia, MediaKind
from bedel.phones import InvalidPhone, mask_phone, normalize_phone

log = structlog.get_logger()

# Kinds that need no answer at all; any other kind that is not text, a voice note or a file gets the "only text" reply.
_SILENT_TYPES = frozenset({"reaction", "system"})


class _Lenient(BaseModel):
    # Meta adds fields over time; unknown ones must not break the webhook.
    model_config = ConfigDict(extra="ignore")


class Text(_Lenient):
    body: str


class Media(_Lenient):
    id: str
    mime_type: str = "application/octet-stream"  # always sent; without it the file is refused, not the webhook
    caption: str | None = None
    filename: str | None = None  # documents only


class InboundMessage(_Lenient):
    sender: str = Field(alias="from")
    id: str
    timestamp: int  # Unix seconds, sent as a string
    type: str
    text: Text | None = None
    audio: Media | None = None
    image: Media | None = None
    document: Media | None = None

    def media(self) -> InboundMedia | None:
        """The voice note, image or document this message carries; other kinds (video, stickers, ...) are not kept."""
        if self.type not in MediaKind.__members__:
            return None
        media: Media | None = getattr(self, self.type)
        if media is None:
            return None
        return InboundMedia(MediaKind(self.type), media.mime_type, media.id, media.caption, media.filename)


class Metadata(_Lenient):
    display_phone_number: str | None = None
    phone_number_id: str


class Value(_Lenient):
    messaging_product: str
    metadata: Metadata
    messages: list[InboundMessage] = []


class Change(_Lenient):
    field: str
    # Read as `Value` only for the `messages` field; other fields have other shapes.
    value: dict[str, object]


class Entry(_Lenient):
    id: str
    changes: list[Change]


class WebhookPayload(_Lenient):
    object: str
    entry: list[Entry]

    def inbound(self, phone_number_id: str) -> list[Inbound]:
        """The student messages sent to our number, oldest first; statuses and other fields are skipped.

        Raises `ValidationError` when a `messages` change is not shaped as documented.
        """
        found: list[Inbound] = []
        for entry in self.entry:
            for change in entry.changes:
                if change.field != "messages":
                    continue
                value = Value.model_validate(change.value)
                if value.metadata.phone_number_id != phone_number_id:
                    continue
                found += filter(None, (_inbound(message) for message in value.messages))
        return sorted(found, key=lambda message: message.sent_at)


def _inbound(message: InboundMessage) -> Inbound | None:
    if message.type in _SILENT_TYPES:
        return None
    try:
        phone = normalize_phone(message.sender)
    except InvalidPhone:
        log.warning("whatsapp_sender_not_a_phone", sender=mask_phone(message.sender))
        return None
    return Inbound(
        channel=Channel.whatsapp,
        external_id=message.id,
        address=message.sender,
        phone=phone,
        text=message.text.body if message.type == "text" and message.text else None,
        sent_at=datetime.fromtimestamp(message.timestamp, UTC),
        media=message.media(),
    )
