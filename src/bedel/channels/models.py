from datetime import datetime
from enum import StrEnum

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from bedel.db import Base, RecordMixin


class Channel(StrEnum):
    whatsapp = "whatsapp"
    twilio = "twilio"


# The longest text one message may carry: Meta's text body limit, Twilio's WhatsApp body limit.
MAX_TEXT_LENGTH = {Channel.whatsapp: 4096, Channel.twilio: 1600}


class ChannelContact(RecordMixin, Base):
    """How to reach a phone's student: the channel and address of their latest message."""

    __tablename__ = "channel_contacts"

    phone: Mapped[str] = mapped_column(String(16), unique=True)
    channel: Mapped[Channel] = mapped_column(String(20))
    # The vendor's form of the sender (digits, a business-scoped user id, or Twilio's "whatsapp:+..."),
    # used as is to reply.
    address: Mapped[str] = mapped_column(String(200))
    # Free-form messages may only be sent within 24 hours of this.
    last_inbound_at: Mapped[datetime]
    # When the privacy notice went out with the phone's first answer (BEDEL_PRIVACY_NOTICE); None: not yet.
    privacy_notice_at: Mapped[datetime | None]
