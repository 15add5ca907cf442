"""Where each campaign channel sends: WhatsApp templates (Meta, or Twilio's Content API), SMS, email."""

from typing import Protocol

from bedel.campaigns.messages import Rendered
from bedel.campaigns.models import CampaignChannel
from bedel.channels.email.client import EmailClient
from bedel.channels.senders import email_client, twilio_client, whatsapp_client
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
        outboxes[CampaignChannel.whatsapp_template] = MetaTemplates(whatsapp_client(settings))
    elif settings.twilio_enabled:
        assert settings.twilio_from is not None
        outboxes[CampaignChannel.whatsapp_template] = TwilioTemplates(twilio_client(settings, settings.twilio_from))
    if settings.sms_enabled:
        assert settings.twilio_sms_from is not None
        outboxes[CampaignChannel.sms] = SMS(twilio_client(settings, settings.twilio_sms_from))
    if settings.email_enabled:
        outboxes[CampaignChannel.email] = Email(email_client(settings))
    return outboxes
