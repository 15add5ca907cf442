"""The one place that picks a sender per configured channel."""

from bedel.channels.email.client import EmailClient
from bedel.channels.models import Channel
from bedel.channels.ports import EmailSender, MessageSender
from bedel.channels.twilio.client import TwilioClient
from bedel.channels.whatsapp.client import WhatsAppClient
from bedel.config import ReengageFallback, Settings

TWILIO_STATUS_PATH = "/webhooks/twilio/status"


def create_senders(settings: Settings) -> dict[Channel, MessageSender]:
    senders: dict[Channel, MessageSender] = {}
    if settings.whatsapp_enabled:
        senders[Channel.whatsapp] = whatsapp_client(settings)
    if settings.twilio_enabled:
        assert settings.twilio_from is not None
        senders[Channel.twilio] = twilio_client(settings, settings.twilio_from)
    return senders


def create_sms_sender(settings: Settings) -> MessageSender | None:
    """Twilio SMS from `BEDEL_TWILIO_SMS_FROM`, for students whose WhatsApp window has closed."""
    if settings.reengage_fallback is not ReengageFallback.sms or not settings.sms_enabled:
        return None
    assert settings.twilio_sms_from is not None
    return twilio_client(settings, settings.twilio_sms_from)


def create_email_sender(settings: Settings) -> EmailSender | None:
    """SMTP to the address on the student's record, for students whose WhatsApp window has closed."""
    if settings.reengage_fallback is not ReengageFallback.email or not settings.email_enabled:
        return None
    return email_client(settings)


def whatsapp_client(settings: Settings) -> WhatsAppClient:
    assert settings.whatsapp_access_token is not None and settings.whatsapp_phone_number_id is not None
    return WhatsAppClient(
        api_base=settings.whatsapp_api_base,
        phone_number_id=settings.whatsapp_phone_number_id,
        access_token=settings.whatsapp_access_token.get_secret_value(),
        template=settings.whatsapp_reengage_template,
        template_language=settings.whatsapp_reengage_language,
    )


def email_client(settings: Settings) -> EmailClient:
    assert settings.smtp_host is not None and settings.smtp_from is not None
    return EmailClient(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        security=settings.smtp_security,
    )


def twilio_client(settings: Settings, sender: str) -> TwilioClient:
    """A Twilio client for one sender (WhatsApp or SMS), with status callbacks when BEDEL_PUBLIC_URL is set."""
    assert settings.twilio_account_sid and settings.twilio_auth_token
    public_url = settings.public_url.rstrip("/") if settings.public_url else None
    return TwilioClient(
        api_base=settings.twilio_api_base,
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token.get_secret_value(),
        sender=sender,
        status_callback=f"{public_url}{TWILIO_STATUS_PATH}" if public_url else None,
        template_sid=settings.twilio_reengage_content_sid,
    )
