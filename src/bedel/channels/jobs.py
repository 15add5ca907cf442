"""The channel job kinds as typed values: what each job's JSON payload holds, and the key that orders it.

The jobs table stores JSON (`bedel.jobs`); only these classes read or write it,
so a payload an older release ledgered is read here too: one without
`received_at` (before bursts), without `buttons` (before reply buttons), or
without `sent_at` and `identities` (taken in by the webhook itself then).
"""

import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from bedel.channels.models import Channel
from bedel.channels.ports import Button
from bedel.channels.schemas import Delivery, Inbound, InboundMedia, MediaKind
from bedel.identities.models import IdentityKind
from bedel.identities.schemas import Identity

# When an answer job ledgered before bursts existed arrived, for all it matters: long ago, so long quiet.
_LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class AnswerJob:
    """Answer one inbound message, as the webhook ledgered it."""

    kind: ClassVar[str] = "channels.answer"

    channel: Channel
    external_id: str
    address: str
    # Canonical, or the anonymous key of a business-scoped id, as the message carried it.
    phone: str
    text: str | None
    received_at: datetime
    media: InboundMedia | None = None
    button: str | None = None
    # When the student sent it and every identifier it carried: the job records them (`take_in`).
    # None in a job an older release ledgered, whose webhook recorded them.
    sent_at: datetime | None = None
    identities: tuple[Identity, ...] | None = None

    @classmethod
    def of(cls, message: Inbound, received_at: datetime) -> "AnswerJob":
        return cls(
            message.channel,
            message.external_id,
            message.address,
            message.phone,
            message.text,
            received_at,
            message.media,
            message.button,
            message.sent_at,
            message.identities,
        )

    @property
    def key(self) -> str:
        """One phone's messages are answered one at a time, in arrival order."""
        return f"answer:{self.phone}"

    @property
    def source_id(self) -> str:
        """The message's id across channels: it ledgers the message once and names the answer it got."""
        return f"{self.channel}:{self.external_id}"

    def to_payload(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "external_id": self.external_id,
            "address": self.address,
            "phone": self.phone,
            "text": self.text,
            "media": asdict(self.media) if self.media else None,
            "button": self.button,
            "received_at": self.received_at.isoformat(),
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
            "identities": None if self.identities is None else [list(identity) for identity in self.identities],
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "AnswerJob":
        media, received_at = payload.get("media"), payload.get("received_at")
        sent_at, identities = payload.get("sent_at"), payload.get("identities")
        return cls(
            Channel(payload["channel"]),
            payload["external_id"],
            payload["address"],
            payload["phone"],
            payload["text"],
            datetime.fromisoformat(received_at) if received_at else _LONG_AGO,
            _media(media) if media else None,
            payload.get("button"),
            datetime.fromisoformat(sent_at) if sent_at else None,
            None if identities is None else tuple(Identity(IdentityKind(kind), value) for kind, value in identities),
        )


def _media(media: dict[str, Any]) -> InboundMedia:
    return InboundMedia(MediaKind(media["kind"]), media["mime_type"], media["ref"], media["caption"], media["filename"])


@dataclass(frozen=True)
class QueuedAnswer:
    """An answer job still in the queue, with its id there."""

    id: int
    job: AnswerJob


@dataclass(frozen=True)
class DeliverJob:
    """Send one part of a text (split to the channel's length); only the last part carries buttons."""

    kind: ClassVar[str] = "channels.deliver"

    part: Delivery

    @property
    def key(self) -> str:
        """One phone's parts leave one at a time, in the order they were written."""
        return f"deliver:{self.part.phone}"

    def to_payload(self) -> dict[str, Any]:
        part = self.part
        return {
            "channel": part.channel,
            "address": part.address,
            "phone": part.phone,
            "text": part.text,
            "message_id": str(part.message_id) if part.message_id is not None else None,
            "buttons": [[button.id, button.title] for button in part.buttons],
            "footer": part.footer,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "DeliverJob":
        message_id = payload["message_id"]
        return cls(
            Delivery(
                Channel(payload["channel"]),
                payload["address"],
                payload["phone"],
                payload["text"],
                uuid.UUID(message_id) if message_id else None,
                tuple(Button(*button) for button in payload.get("buttons") or ()),
                payload.get("footer", ""),
            )
        )
