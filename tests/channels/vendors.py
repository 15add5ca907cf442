"""Webhook bodies and API responses shaped exactly like Meta's and Twilio's documented ones, signed their way."""

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

GRAPH_BASE = "http://graph.test/v23.0"
PHONE_NUMBER_ID = "106540352242922"
VERIFY_TOKEN = "meatyhamhock"
APP_SECRET = "e6f1c9a4b0d2e3f4a5b6c7d8e9f0a1b2"
ACCESS_TOKEN = "EAAJB-test-token"

TWILIO_BASE = "http://twilio.test"
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "12345678901234567890123456789012"
TWILIO_FROM = "whatsapp:+14155238886"
PUBLIC_URL = "https://bedel.example.edu"

CHANNEL_SETTINGS: dict[str, Any] = {
    "whatsapp_verify_token": VERIFY_TOKEN,
    "whatsapp_app_secret": APP_SECRET,
    "whatsapp_access_token": ACCESS_TOKEN,
    "whatsapp_phone_number_id": PHONE_NUMBER_ID,
    "whatsapp_api_base": GRAPH_BASE,
    "twilio_account_sid": ACCOUNT_SID,
    "twilio_auth_token": AUTH_TOKEN,
    "twilio_from": TWILIO_FROM,
    "twilio_api_base": TWILIO_BASE,
    "public_url": PUBLIC_URL,
    "job_retry_base_s": 0.01,
    "jobs_in_process": True,
    # Each message its own answer; tests/channels/test_bursts.py turns merging on with a clock it moves.
    "whatsapp_burst_window_s": 0,
}

GRAPH_MESSAGES_URL = f"{GRAPH_BASE}/{PHONE_NUMBER_ID}/messages"
TWILIO_MESSAGES_URL = f"{TWILIO_BASE}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


def _envelope(value: dict[str, Any], phone_number_id: str = PHONE_NUMBER_ID) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def text_message(
    wa_id: str, body: str, wamid: str, *, timestamp: int | None = None, phone_number_id: str = PHONE_NUMBER_ID
) -> dict[str, Any]:
    return _envelope(
        {
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": wa_id}],
            "messages": [
                {
                    "from": wa_id,
                    "id": wamid,
                    "timestamp": str(timestamp or int(time.time())),
                    "text": {"body": body},
                    "type": "text",
                }
            ],
        },
        phone_number_id,
    )


def username_message(
    user_id: str,
    body: str,
    wamid: str,
    *,
    wa_id: str | None = None,
    username: str = "lucia.perez",
    timestamp: int | None = None,
) -> dict[str, Any]:
    """A text from a user with a WhatsApp username, as Meta's business-scoped user ID documentation shows it:
    `user_id` in the contact and `from_user_id` in the message; `wa_id` and `from` only when Meta shares the
    phone (pass `wa_id`), left out when the user withholds it."""
    contact: dict[str, Any] = {"profile": {"name": "Lucía", "username": username}}
    message: dict[str, Any] = {}
    if wa_id is not None:
        contact["wa_id"] = wa_id
        message["from"] = wa_id
    contact["user_id"] = user_id
    message |= {
        "from_user_id": user_id,
        "id": wamid,
        "timestamp": str(timestamp or int(time.time())),
        "text": {"body": body},
        "type": "text",
    }
    return _envelope({"contacts": [contact], "messages": [message]})


def image_message(wa_id: str, wamid: str) -> dict[str, Any]:
    return _envelope(
        {
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": wa_id}],
            "messages": [
                {
                    "from": wa_id,
                    "id": wamid,
                    "timestamp": str(int(time.time())),
                    "type": "image",
                    "image": {
                        "caption": "",
                        "mime_type": "image/jpeg",
                        "sha256": "WZVRFJNHXHVDFZAXAIXsJFbwt4kYKNHhcAHPzjszfxE=",
                        "id": "1003383421387256",
                    },
                }
            ],
        }
    )


# Where Meta's media endpoint says a file is; it answers only with the access token, for a few minutes.
LOOKASIDE_URL = (
    "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1013859600285441&ext=1732920000&hash=ATuZ"
)


def media_message(wa_id: str, wamid: str, kind: str, media: dict[str, Any]) -> dict[str, Any]:
    """A message carrying a voice note, image, document or video, as Meta's webhook reference shows them."""
    return _envelope(
        {
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": wamid, "timestamp": str(int(time.time())), "type": kind, kind: media}],
        }
    )


def voice_message(wa_id: str, wamid: str, media_id: str = "1013859600285441") -> dict[str, Any]:
    return media_message(
        wa_id,
        wamid,
        "audio",
        {
            "mime_type": "audio/ogg; codecs=opus",
            "sha256": "bWbgYpt2Hnn2O1LKmRQf4PQaJm5W2cLd3Wb0hqY2bWE=",
            "id": media_id,
            "url": LOOKASIDE_URL,
            "voice": True,
        },
    )


def document_message(wa_id: str, wamid: str, mime_type: str = "application/pdf") -> dict[str, Any]:
    return media_message(
        wa_id,
        wamid,
        "document",
        {
            "caption": "Mi comprobante de pago",
            "filename": "comprobante.pdf",
            "mime_type": mime_type,
            "sha256": "Ewbq6vgvTYCmTqJ4RU8sQ+H0JCwqa/kz3Yu06FZC4lo=",
            "id": "1013859600285442",
            "url": LOOKASIDE_URL,
        },
    )


def graph_media(media_id: str, mime_type: str, size: int) -> httpx.Response:
    """The Graph API's answer to `GET /{media-id}`: a short-lived URL and what is behind it."""
    return httpx.Response(
        200,
        json={
            "messaging_product": "whatsapp",
            "url": LOOKASIDE_URL,
            "mime_type": mime_type,
            "sha256": "81d3bd8a8db4868c9520ed47186e8b7c5789e61ff79f7f834be6950b808a90d3",
            "file_size": str(size),
            "id": media_id,
        },
    )


def transcription(text: str) -> httpx.Response:
    """OpenAI's `/audio/transcriptions` answer in its default `json` format."""
    return httpx.Response(200, json={"text": text, "usage": {"type": "duration", "seconds": 3}})


def status_update(
    wa_id: str, wamid: str, status: str = "delivered", *, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A `statuses` notification; `failed` ones carry `errors` and no conversation or pricing."""
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(int(time.time())),
        "recipient_id": wa_id,
    }
    if status == "failed":
        entry["errors"] = errors or []
    else:
        entry["conversation"] = {"id": "6ceb9d929c1a3e0e1cb2e8a2f8a6ee5d", "origin": {"type": "service"}}
        entry["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "service"}
    return _envelope({"statuses": [entry]})


def graph_status_error(code: int, title: str, details: str) -> dict[str, Any]:
    """One entry of a failed status's `errors`."""
    return {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": details},
        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
    }


def button_reply(wa_id: str, wamid: str, button_id: str, title: str, replied_to: str) -> dict[str, Any]:
    """The student tapped a reply button under the message `replied_to`."""
    return _envelope(
        {
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": wa_id}],
            "messages": [
                {
                    "context": {"from": "15550783881", "id": replied_to},
                    "from": wa_id,
                    "id": wamid,
                    "timestamp": str(int(time.time())),
                    "type": "interactive",
                    "interactive": {"type": "button_reply", "button_reply": {"id": button_id, "title": title}},
                }
            ],
        }
    )


def sent_text(request: httpx.Request) -> str:
    """The words of a Graph API send, whatever its type: text, reply buttons or template."""
    return sent_words(json.loads(request.content))


def sent_words(body: dict[str, Any]) -> str:
    """The words of a Graph API send body, whatever its type: text, reply buttons or template."""
    match body["type"]:
        case "text":
            return str(body["text"]["body"])
        case "interactive":
            return str(body["interactive"]["body"]["text"])
        case _:
            return str(body["template"]["components"][0]["parameters"][0]["text"])


def sent_buttons(request: httpx.Request) -> list[str]:
    """The ids of the reply buttons a Graph API send carries."""
    body = json.loads(request.content)
    if body["type"] != "interactive":
        return []
    return [button["reply"]["id"] for button in body["interactive"]["action"]["buttons"]]


def meta_signature(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed(payload: dict[str, Any], secret: str = APP_SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {"content-type": "application/json", "x-hub-signature-256": meta_signature(body, secret)}


def graph_sent(
    wa_id: str = "16505551234", wamid: str = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA"
) -> httpx.Response:
    """The Graph API's answer to a successful send-message call."""
    return httpx.Response(
        200,
        json={
            "messaging_product": "whatsapp",
            "contacts": [{"input": wa_id, "wa_id": wa_id}],
            "messages": [{"id": wamid}],
        },
    )


def graph_sent_to_user(user_id: str) -> httpx.Response:
    """The Graph API's answer to a send addressed by business-scoped user id (`recipient`): no wa_id."""
    return httpx.Response(
        200,
        json={
            "messaging_product": "whatsapp",
            "contacts": [{"input": user_id, "user_id": user_id}],
            "messages": [{"id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"}],
        },
    )


def graph_error(status: int, code: int, message: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "error_data": {"messaging_product": "whatsapp", "details": message},
                "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
            }
        },
    )


def twilio_form(
    wa_id: str, body: str, sid: str, *, num_media: int = 0, media_type: str = "image/jpeg"
) -> dict[str, str]:
    """The fields Twilio posts for an incoming WhatsApp message; with media, its first file's URL and type."""
    media = {"MediaUrl0": twilio_media_url(sid), "MediaContentType0": media_type} if num_media else {}
    return {
        **media,
        "SmsMessageSid": sid,
        "NumMedia": str(num_media),
        "ProfileName": "Lucía",
        "MessageType": "text" if not num_media else media_type.split("/")[0],
        "SmsSid": sid,
        "WaId": wa_id,
        "SmsStatus": "received",
        "Body": body,
        "To": TWILIO_FROM,
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": f"whatsapp:+{wa_id}",
        "ApiVersion": "2010-04-01",
    }


def twilio_media_url(sid: str) -> str:
    return f"{TWILIO_BASE}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media/ME{'5' * 32}"


def twilio_signed(form: dict[str, str], url: str = f"{PUBLIC_URL}/webhooks/twilio") -> tuple[str, dict[str, str]]:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    return urlencode(form), {"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature}


def twilio_sent(to: str, body: str, sid: str = "SM" + "a" * 32) -> httpx.Response:
    """Twilio's 201 for a created Message resource."""
    return httpx.Response(
        201,
        json={
            "account_sid": ACCOUNT_SID,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
            "date_sent": None,
            "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": TWILIO_FROM,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media.json"},
            "to": to,
            "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
        },
    )


def twilio_status(sid: str, status: str, error_code: str | None = None) -> dict[str, str]:
    """The fields of Twilio's status callback for an outbound WhatsApp message."""
    form = {
        "SmsSid": sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "ChannelToAddress": "+5215512345678",
        "To": "whatsapp:+5215512345678",
        "ChannelPrefix": "whatsapp",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": TWILIO_FROM,
        "ApiVersion": "2010-04-01",
        "ChannelInstallSid": "XE" + "0" * 32,
    }
    if error_code is not None:
        form["ErrorCode"] = error_code
    return form


def twilio_error(status: int, code: int, message: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )
