"""The parts of Meta's `messages` webhook that Bedel reads; everything else is ignored."""

from datetime import UTC, datetime

import structlog
from pydantic import BaseModel, ConfigDict, Field

from bedel.channels.models import Channel
from bedel.channels.schemas import Inbound
from bedel.identities.models import IdentityKind
from bedel.identities.schemas import Identity
from bedel.identities.service import anonymous_key
from bedel.phones import InvalidPhone, mask_phone, normalize_phone

log = structlog.get_logger()

# Kinds that need no answer at all; any other non-text kind gets the "only text" reply.
_SILENT_TYPES = frozenset({"reaction", "system"})


class _Lenient(BaseModel):
    # Meta adds fields over time; unknown ones must not break the webhook.
    model_config = ConfigDict(extra="ignore")


class Text(_Lenient):
    body: str


class InboundMessage(_Lenient):
    # A user with a username may withhold their phone: then `from` is left out and only
    # `from_user_id`, their business-scoped user id (BSUID), says who wrote.
    sender: str | None = Field(default=None, alias="from")
    from_user_id: str | None = Field(default=None, max_length=200)
    id: str
    timestamp: int  # Unix seconds, sent as a string
    type: str
    text: Text | None = None


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
    return Inbound(
        channel=Channel.whatsapp,
        external_id=message.id,
        address=address,
        phone=phone,
        text=message.text.body if message.type == "text" and message.text else None,
        sent_at=datetime.fromtimestamp(message.timestamp, UTC),
        identities=tuple(identities),
    )


def _canonical(sender: str) -> str | None:
    try:
        return normalize_phone(sender)
    except InvalidPhone:
        log.warning("whatsapp_sender_not_a_phone", sender=mask_phone(sender))
        return None
