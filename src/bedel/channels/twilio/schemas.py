"""The fields of Twilio's incoming-message webhook and status callback that Bedel reads."""

from pydantic import Field

from bedel.channels.models import Channel
from bedel.channels.schemas import Inbound, InboundMedia, MediaKind, Receipt, VendorPayload
from bedel.db import utcnow
from bedel.delivery import DeliveryStatus
from bedel.identities.models import IdentityKind
from bedel.identities.schemas import Identity
from bedel.phones import normalize_phone


class IncomingMessage(VendorPayload):
    # Twilio sends many more fields (AccountSid, ProfileName, MediaUrl0, ...); they are ignored.

    message_sid: str = Field(alias="MessageSid", min_length=1, max_length=64)
    sender: str = Field(alias="From", min_length=1, max_length=64)  # "whatsapp:+5215512345678"
    wa_id: str | None = Field(default=None, alias="WaId", max_length=32)
    body: str = Field(default="", alias="Body")
    num_media: int = Field(default=0, alias="NumMedia", ge=0)
    # Bedel keeps the first file of a message; WhatsApp sends one file per message.
    media_url: str | None = Field(default=None, alias="MediaUrl0", max_length=500)
    media_type: str | None = Field(default=None, alias="MediaContentType0", max_length=200)

    def inbound(self) -> Inbound:
        text = self.body.strip()
        media = self._media(text or None)
        return Inbound(
            channel=Channel.twilio,
            external_id=self.message_sid,
            address=self.sender,
            phone=normalize_phone(self.wa_id or self.sender.removeprefix("whatsapp:")),
            # A file's caption travels in Body: it stays with the file.
            text=None if media else text or None,
            # Twilio's webhook carries no timestamp: it calls within seconds of the message.
            sent_at=utcnow(),
            media=media,
            identities=(Identity(IdentityKind.twilio, self.sender),),
        )

    def _media(self, caption: str | None) -> InboundMedia | None:
        if not (self.num_media and self.media_url and self.media_type):
            return None
        major = self.media_type.split("/")[0]
        if major == "video":
            return None
        kind = MediaKind(major) if major in ("audio", "image") else MediaKind.document
        return InboundMedia(kind, self.media_type, self.media_url, caption=caption)


# Twilio's statuses that say how a message fared; queued, sending, accepted and the like say nothing new.
_RECEIPT_STATUSES = {
    "sent": DeliveryStatus.sent,
    "delivered": DeliveryStatus.delivered,
    "read": DeliveryStatus.read,
    "undelivered": DeliveryStatus.failed,
    "failed": DeliveryStatus.failed,
}


class StatusCallback(VendorPayload):
    """Twilio's status callback for a message Bedel sent (`StatusCallback` on the send)."""

    message_sid: str = Field(alias="MessageSid", min_length=1, max_length=64)
    message_status: str = Field(alias="MessageStatus", min_length=1, max_length=20)
    error_code: str | None = Field(default=None, alias="ErrorCode", max_length=10)

    def receipt(self) -> Receipt | None:
        status = _RECEIPT_STATUSES.get(self.message_status)
        if status is None:
            return None
        code = self.error_code if status == DeliveryStatus.failed and self.error_code else None
        return Receipt(self.message_sid, status, code, f"Twilio {self.message_status} {code or ''}".strip())
