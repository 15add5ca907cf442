"""The parts of Meta's `messages` webhook that Bedel reads (messages, button taps, statuses); the rest is ignored."""

from datetime import UTC, datetime

import structlog
from pydantic import Field

from bedel.channels.models import Channel
from bedel.channels.schemas import Inbound, InboundMedia, MediaKind, Receipt, VendorPayload
from bedel.delivery import DeliveryStatus
from bedel.identities.models import IdentityKind
from bedel.identities.schemas import Identity
from bedel.identities.service import anonymous_key
from bedel.phones import InvalidPhone, mask_phone, normalize_phone

log = structlog.get_logger()

# Kinds that need no answer at all; any other kind that is not text, a voice note or a file gets the "only text" reply.
_SILENT_TYPES = frozenset({"reaction", "system"})
_RECEIPT_STATUSES = frozenset({"sent", "delivered", "read", "failed"})
# Unix seconds up to the last moment of year 9999: a later one cannot become a datetime.
_LAST_TIMESTAMP = 253_402_300_799


# Lengths a real delivery never reaches (ids are under 100 characters, a text under 4,096),
# bounding what is stored: a longer value refuses the delivery with a 422.
_ID = Field(max_length=200)


class Text(VendorPayload):
    body: str = Field(max_length=65_536)


class Media(VendorPayload):
    id: str = _ID
    # Always sent; without it the file is refused, not the webhook.
    mime_type: str = Field(default="application/octet-stream", max_length=200)
    caption: str | None = Field(default=None, max_length=65_536)
    filename: str | None = Field(default=None, max_length=255)  # documents only


class ButtonReply(VendorPayload):
    id: str = _ID
    title: str = Field(max_length=200)


class Interactive(VendorPayload):
    type: str
    button_reply: ButtonReply | None = None


class InboundMessage(VendorPayload):
    # A user with a username may withhold their phone: then `from` is left out and only
    # `from_user_id`, their business-scoped user id (BSUID), says who wrote.
    sender: str | None = Field(default=None, alias="from")
    from_user_id: str | None = Field(default=None, max_length=200)
    id: str = _ID
    timestamp: int = Field(ge=0, le=_LAST_TIMESTAMP)  # Unix seconds, sent as a string
    type: str
    text: Text | None = None
    audio: Media | None = None
    image: Media | None = None
    document: Media | None = None
    interactive: Interactive | None = None

    def media(self) -> InboundMedia | None:
        """The voice note, image or document this message carries; other kinds (video, stickers, ...) are not kept."""
        if self.type not in MediaKind.__members__:
            return None
        media: Media | None = getattr(self, self.type)
        if media is None:
            return None
        return InboundMedia(MediaKind(self.type), media.mime_type, media.id, media.caption, media.filename)


class StatusErrorData(VendorPayload):
    details: str = Field(default="", max_length=2000)


class StatusError(VendorPayload):
    code: int
    title: str = Field(default="", max_length=2000)
    error_data: StatusErrorData | None = None


class Status(VendorPayload):
    id: str = _ID
    status: str  # sent, delivered, read, failed
    timestamp: int = Field(ge=0, le=_LAST_TIMESTAMP)
    recipient_id: str | None = Field(default=None, max_length=200)
    errors: list[StatusError] = Field(default_factory=list)

    def receipt(self) -> Receipt | None:
        if self.status not in _RECEIPT_STATUSES:
            return None
        error = self.errors[0] if self.errors else None
        if error is None:
            return Receipt(self.id, DeliveryStatus(self.status))
        detail = error.error_data.details if error.error_data and error.error_data.details else error.title
        return Receipt(self.id, DeliveryStatus(self.status), str(error.code), detail)


class Metadata(VendorPayload):
    display_phone_number: str | None = None
    phone_number_id: str


class Value(VendorPayload):
    messaging_product: str
    metadata: Metadata
    messages: list[InboundMessage] = Field(default_factory=list)
    statuses: list[Status] = Field(default_factory=list)


class Change(VendorPayload):
    field: str
    # Read as `Value` only for the `messages` field; other fields have other shapes.
    value: dict[str, object]


class Entry(VendorPayload):
    id: str
    changes: list[Change]


class WebhookPayload(VendorPayload):
    object: str
    entry: list[Entry]

    def inbound(self, phone_number_id: str) -> list[Inbound]:
        """The student messages sent to our number, oldest first; statuses and other fields are skipped.

        Raises `ValidationError` when a `messages` change is not shaped as documented.
        """
        found: list[Inbound] = []
        for value in self._values(phone_number_id):
            found += filter(None, (_inbound(message) for message in value.messages))
        return sorted(found, key=lambda message: message.sent_at)

    def receipts(self, phone_number_id: str) -> list[Receipt]:
        """The delivery statuses of messages sent from our number, in any order (they only move forward)."""
        return [
            receipt
            for value in self._values(phone_number_id)
            for receipt in (status.receipt() for status in value.statuses)
            if receipt is not None
        ]

    def _values(self, phone_number_id: str) -> list[Value]:
        return [
            value
            for entry in self.entry
            for change in entry.changes
            if change.field == "messages"
            for value in [Value.model_validate(change.value)]
            if value.metadata.phone_number_id == phone_number_id
        ]


def _inbound(message: InboundMessage) -> Inbound | None:
    if message.type in _SILENT_TYPES:
        return None
    identities: list[Identity] = []
    if message.from_user_id:
        identities.append(Identity(IdentityKind.bsuid, message.from_user_id))
    sender = message.sender
    phone = _canonical(sender) if sender is not None else None
    if sender is not None and phone is not None:
        identities.append(Identity(IdentityKind.wa_id, sender))
        # The canonical digits: a Mexican mobile without the "1" WhatsApp adds ("52 55..." not "52 1 55..."),
        # the form the Cloud API accepts for every Mexican number.
        address = phone.removeprefix("+")
    elif message.from_user_id:
        phone, address = anonymous_key(message.from_user_id), message.from_user_id
    else:
        log.warning("whatsapp_sender_unknown", message_id=message.id)
        return None
    reply = message.interactive.button_reply if message.type == "interactive" and message.interactive else None
    text = message.text.body if message.type == "text" and message.text else None
    return Inbound(
        channel=Channel.whatsapp,
        external_id=message.id,
        address=address,
        phone=phone,
        text=reply.title if reply else text,
        sent_at=datetime.fromtimestamp(message.timestamp, UTC),
        media=message.media(),
        identities=tuple(identities),
        button=reply.id if reply else None,
    )


def _canonical(sender: str) -> str | None:
    try:
        return normalize_phone(sender)
    except InvalidPhone:
        log.warning("whatsapp_sender_not_a_phone", sender=mask_phone(sender))
        return None
