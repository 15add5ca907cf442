"""Twilio's webhooks (form-encoded, signed with the account's auth token): incoming messages and status callbacks."""

from typing import cast

from fastapi import APIRouter, BackgroundTasks, Request, Response
from pydantic import ValidationError

from bedel.auth import VendorSigned
from bedel.channels.endpoints import ChannelsState
from bedel.channels.models import Channel
from bedel.channels.service import accept_inbound
from bedel.channels.twilio.schemas import IncomingMessage, StatusCallback
from bedel.channels.twilio.verification import signature_is_valid
from bedel.dependencies import DBSession, get_state
from bedel.errors import ChannelDisabled, InvalidInput, Unauthorized
from bedel.ops.metrics import count_webhook
from bedel.phones import InvalidPhone

router = APIRouter(prefix="/webhooks/twilio", tags=["webhooks"], dependencies=[VendorSigned])

# An empty TwiML answer: the reply comes later, from a job, through the REST API.
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


async def _signed_form(request: Request) -> dict[str, str]:
    """The form Twilio posted, once its signature over BEDEL_PUBLIC_URL and the fields checks out."""
    settings = get_state(request).settings
    if not (settings.twilio_auth_token and settings.public_url):
        raise ChannelDisabled(
            "the Twilio channel is off: set BEDEL_TWILIO_ACCOUNT_SID, BEDEL_TWILIO_AUTH_TOKEN and BEDEL_TWILIO_FROM"
        )
    form = {key: str(value) for key, value in (await request.form()).items()}
    # Behind a proxy the URL Twilio called is not the one this process sees.
    url = settings.public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += f"?{request.url.query}"
    signature = request.headers.get("x-twilio-signature")
    if not signature_is_valid(url, form, signature, settings.twilio_auth_token.get_secret_value()):
        count_webhook(Channel.twilio, rejected=1)
        raise Unauthorized("X-Twilio-Signature is missing or does not match BEDEL_PUBLIC_URL and the form")
    return form


@router.post("", response_class=Response)
async def receive_message(request: Request, session: DBSession, background: BackgroundTasks) -> Response:
    """Verify the signature, ledger the message once, and answer later from a job."""
    if not get_state(request).settings.twilio_enabled:
        raise ChannelDisabled(
            "the Twilio channel is off: set BEDEL_TWILIO_ACCOUNT_SID, BEDEL_TWILIO_AUTH_TOKEN and BEDEL_TWILIO_FROM"
        )
    form = await _signed_form(request)
    try:
        message = IncomingMessage.model_validate(form).inbound()
    except (ValidationError, InvalidPhone):
        raise InvalidInput(
            "not a Twilio incoming-message webhook: MessageSid and a phone in From are required"
        ) from None
    accepted = await accept_inbound(session, [message], get_state(request).clock())
    count_webhook(Channel.twilio, accepted=accepted, duplicates=1 - accepted)
    background.add_task(get_state(request).jobs.wake)
    return Response(EMPTY_TWIML, media_type="text/xml")


@router.post("/status", status_code=204, response_class=Response)
async def receive_status(request: Request, session: DBSession) -> Response:
    """A sent message's new status (sent, delivered, read, undelivered, failed); it only moves forward."""
    form = await _signed_form(request)
    try:
        receipt = StatusCallback.model_validate(form).receipt()
    except ValidationError:
        raise InvalidInput("not a Twilio status callback: MessageSid and MessageStatus are required") from None
    if receipt is not None:
        await cast(ChannelsState, get_state(request)).receipts.apply(session, [receipt])
    return Response(status_code=204)
