"""Where each campaign channel sends: WhatsApp templates (Meta, or Twilio's Content API), SMS, email."""

from typing import Protocol

from bedel.campaigns.messages import Rendered
from bedel.campaigns.models import CampaignChannel
from bedel.channels.email.client import EmailClient
from bedel.channels.twilio.client import TwilioClient
from bedel.channels.whatsapp.client import WhatsAppClient
from bedel.config import Settings


class Outbox(Protocol):
    async def send(self, address: str, message: Rendered) -> str:
        """Send to a canonical phone or an email address; return the vendor's id or raise `SendFailed`."""
        ...

    async def aclose(self) -> None: ...


class MetaTemplates:
    def __init__(self, client: WhatsAppClient) -> None:
        self._client = client

    async def send(self, address: str, message: Rendered) -> str:
        assert message.template is not None and message.language is not None
        return await self._client.send_template(
            address.lstrip("+"), message.template, message.language, message.parameters
        )

    async def aclose(self) -> None:
        await self._client.aclose()


class TwilioTemplates:
    """The template's name is its Content SID; parameters fill its variables {{1}}, {{2}}, ..."""

    def __init__(self, client: TwilioClient) -> None:
        self._client = client

    async def send(self, address: str, message: Rendered) -> str:
        assert message.template is not None
        variables = {str(number): value for number, value in enumerate(message.parameters, start=1)}
        return await self._client.send_template(f"whatsapp:{address}", message.template, variables)

    async def aclose(self) -> None:
        await self._client.aclose()


class SMS:
    def __init__(self, client: TwilioClient) -> None:
        self._client = client

    async def send(self, address: str, message: Rendered) -> str:
        return await self._client.send_text(address, message.body)

    async def aclose(self) -> None:
        await self._client.aclose()


class Email:
    def __init__(self, client: EmailClient) -> None:
        self._client = client

    async def send(self, address: str, message: Rendered) -> str:
        assert message.subject is not None
        return await self._client.send_email(address, message.subject, message.body)

    async def aclose(self) -> None:
        return None


def create_outboxes(settings: Settings) -> dict[CampaignChannel, Outbox]:
    """One outbox per channel whose settings are complete; campaigns on another channel are refused."""
    outboxes: dict[CampaignChannel, Outbox] = {}
    if settings.whatsapp_enabled:
        assert settings.whatsapp_access_token is not None and settings.whatsapp_phone_number_id is not None
        outboxes[CampaignChannel.whatsapp_template] = MetaTemplates(
            WhatsAppClient(
                api_base=settings.whatsapp_api_base,
                phone_number_id=settings.whatsapp_phone_number_id,
                access_token=settings.whatsapp_access_token.get_secret_value(),
            )
        )
    elif settings.twilio_enabled:
        outboxes[CampaignChannel.whatsapp_template] = TwilioTemplates(_twilio(settings, settings.twilio_from))
    if settings.sms_enabled:
        outboxes[CampaignChannel.sms] = SMS(_twilio(settings, settings.twilio_sms_from))
    if settings.email_enabled:
        assert settings.smtp_host is not None and settings.smtp_from is not None
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        outboxes[CampaignChannel.email] = Email(
            EmailClient(
                host=settings.smtp_host,
                port=settings.smtp_port,
                sender=settings.smtp_from,
                username=settings.smtp_username,
                password=password,
                security=settings.smtp_security,
            )
        )
    return outboxes


def _twilio(settings: Settings, sender: str | None) -> TwilioClient:
    assert settings.twilio_account_sid and settings.twilio_auth_token and sender
    return TwilioClient(
        api_base=settings.twilio_api_base,
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token.get_secret_value(),
        sender=sender,
    )
