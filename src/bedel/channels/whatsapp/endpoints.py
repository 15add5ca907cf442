"""Meta's WhatsApp Cloud API webhook: the subscription handshake and signed message deliveries."""

from typing import Annotated, cast

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError

from bedel.auth import VendorSigned
from bedel.channels.endpoints import ChannelsState
from bedel.channels.models import Channel
from bedel.channels.service import accept_inbound
from bedel.channels.whatsapp.schemas import WebhookPayload
from bedel.channels.whatsapp.verification import signature_is_valid, verify_token_matches
from bedel.config import Settings
from bedel.dependencies import DBSession, get_state
from bedel.errors import ChannelDisabled, Forbidden, InvalidInput, Unauthorized
from bedel.ops.metrics import count_webhook

router = APIRouter(prefix="/webhooks/whatsapp", tags=["webhooks"], dependencies=[VendorSigned])


def _settings(request: Request) -> Settings:
    settings = get_state(request).settings
    if not settings.whatsapp_enabled:
        raise ChannelDisabled(
            "the WhatsApp channel is off: set BEDEL_WHATSAPP_VERIFY_TOKEN, BEDEL_WHATSAPP_APP_SECRET, "
            "BEDEL_WHATSAPP_ACCESS_TOKEN and BEDEL_WHATSAPP_PHONE_NUMBER_ID"
        )
    return settings


@router.get("", response_class=PlainTextResponse)
async def verify_subscription(
    request: Request,
    mode: Annotated[str | None, Query(alias="hub.mode")] = None,
    verify_token: Annotated[str | None, Query(alias="hub.verify_token")] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge", max_length=200)] = None,
) -> str:
    """Meta's handshake: echo `hub.challenge` when `hub.verify_token` is ours."""
    settings = _settings(request)
    assert settings.whatsapp_verify_token is not None
    if mode != "subscribe" or challenge is None:
        raise Forbidden("expected hub.mode=subscribe with a hub.challenge")
    if not verify_token_matches(verify_token, settings.whatsapp_verify_token.get_secret_value()):
        raise Forbidden("hub.verify_token does not match BEDEL_WHATSAPP_VERIFY_TOKEN")
    return challenge


@router.post("")
async def receive_messages(request: Request, session: DBSession, background: BackgroundTasks) -> dict[str, int]:
    """Verify the signature, ledger each new message once (answered later by a job), and apply delivery statuses."""
    settings = _settings(request)
    assert settings.whatsapp_app_secret is not None and settings.whatsapp_phone_number_id is not None
    body = await request.body()
    signature = request.headers.get("x-hub-signature-256")
    if not signature_is_valid(body, signature, settings.whatsapp_app_secret.get_secret_value()):
        count_webhook(Channel.whatsapp, rejected=1)
        raise Unauthorized("X-Hub-Signature-256 is missing or does not match the body")
    try:
        payload = WebhookPayload.model_validate_json(body)
        messages = payload.inbound(settings.whatsapp_phone_number_id)
        receipts = payload.receipts(settings.whatsapp_phone_number_id)
    except ValidationError:
        raise InvalidInput("the body is not a WhatsApp Cloud API webhook notification") from None
    accepted = await accept_inbound(session, messages, get_state(request).clock())
    await cast(ChannelsState, get_state(request)).receipts.apply(session, receipts)
    count_webhook(Channel.whatsapp, accepted=accepted, duplicates=len(messages) - accepted)
    # Runs after the response, so after the request's transaction committed the jobs.
    background.add_task(get_state(request).jobs.wake)
    return {"accepted": accepted}
