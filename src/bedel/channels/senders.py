"""The one place that picks a sender per configured channel."""

from bedel.channels.models import Channel
from bedel.channels.ports import MessageSender
from bedel.channels.twilio.client import TwilioClient
from bedel.channels.whatsapp.client import WhatsAppClient
from bedel.config import Settings


def create_senders(settings: Settings) -> dict[Channel, MessageSender]:
    senders: dict[Channel, MessageSender] = {}
    if settings.whatsapp_enabled:
        assert settings.whatsapp_access_token is not None and settings.whatsapp_phone_number_id is not None
        senders[Channel.whatsapp] = WhatsAppClient(
            api_base=settings.whatsapp_api_base,
            phone_number_id=settings.whatsapp_phone_number_id,
            access_token=settings.whatsapp_access_token.get_secret_value(),
        )
    if settings.twilio_enabled:
        assert settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from
        senders[Channel.twilio] = TwilioClient(
            api_base=settings.twilio_api_base,
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(),
            sender=settings.twilio_from,
        )
    return senders
