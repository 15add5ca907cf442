"""Meta's WhatsApp Cloud API: send text, buttons, templates (`POST {base}/{phone_number_id}/messages`), fetch media."""

import time
from collections.abc import Callable
from typing import Any

import httpx

from bedel.channels.delivery_errors import THROTTLE_DELAY_S
from bedel.channels.downloads import download
from bedel.channels.ports import Button, MediaUnavailable, SendFailed
from bedel.tls import tls_context

# Graph error codes that mean "later", not "never": unknown/service errors and rate limits.
_TEMPORARY_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131056})
# 130429 pauses every send from this process; 131056 only that student's queue (keyed per phone).
THROUGHPUT_PAUSE_S = THROTTLE_DELAY_S["130429"]
# A template parameter may not hold line breaks, and the template body is at most 1,024 characters.
TEMPLATE_TEXT_LIMIT = 900


class WhatsAppClient:
    def __init__(
        self,
        *,
        api_base: str,
        phone_number_id: str,
        access_token: str,
        template: str | None = None,
        template_language: str = "es_MX",
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=api_base.rstrip("/"),
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=timeout_s,
            verify=tls_context(),
        )
        self._path = f"/{phone_number_id}/messages"
        self._template = template
        self._template_language = template_language
        self._clock = clock
        self._paused_until = 0.0

    async def send_text(self, to: str, text: str) -> str:
        return await self._send(to, {"type": "text", "text": {"preview_url": False, "body": text}})

    async def send_buttons(self, to: str, text: str, footer: str, buttons: list[Button]) -> str:
        action = {"buttons": [{"type": "reply", "reply": {"id": b.id, "title": b.title}} for b in buttons]}
        interactive: dict[str, Any] = {"type": "button", "body": {"text": text}, "action": action}
        if footer:
            interactive["footer"] = {"text": footer}
        return await self._send(to, {"type": "interactive", "interactive": interactive})

    async def send_template(self, to: str, name: str, language: str, parameters: list[str]) -> str:
        """An approved template, the only kind of message allowed outside the 24-hour window."""
        template: dict[str, object] = {"name": name, "language": {"code": language}}
        if parameters:
            body = [{"type": "text", "text": value} for value in parameters]
            template["components"] = [{"type": "body", "parameters": body}]
        return await self._send(to, {"type": "template", "template": template})

    async def send_reengagement(self, to: str, text: str) -> str:
        if self._template is None:
            raise SendFailed("no re-engagement template: set BEDEL_WHATSAPP_REENGAGE_TEMPLATE", temporary=False)
        parameter = " ".join(text.split())
        if len(parameter) > TEMPLATE_TEXT_LIMIT:
            parameter = parameter[: TEMPLATE_TEXT_LIMIT - 1] + "…"
        return await self.send_template(to, self._template, self._template_language, [parameter])

    async def _send(self, to: str, message: dict[str, Any]) -> str:
        paused_s = self._paused_until - self._clock()
        if paused_s > 0:
            raise SendFailed("Graph API throughput limit", temporary=True, retry_after_s=paused_s, code="130429")
        body = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            # A phone goes in `to`; a business-scoped user id ("MX.1502576394655843") in `recipient`.
            "to" if to.isdigit() else "recipient": to,
            **message,
        }
        try:
            response = await self._http.post(self._path, json=body)
        except httpx.HTTPError as exc:
            raise SendFailed(f"Graph API unreachable ({type(exc).__name__})", temporary=True) from None
        if response.is_success:
            return str(response.json()["messages"][0]["id"])
        failure = _failure(response)
        if failure.code == "130429":
            self._paused_until = self._clock() + THROUGHPUT_PAUSE_S
        raise failure

    async def fetch_media(self, ref: str, max_bytes: int) -> bytes:
        """Meta's two steps: the media's metadata (a URL valid for minutes, and the size), then the file.

        Both take the access token; the size is checked before the file is requested.
        """
        try:
            response = await self._http.get(f"/{ref}")
        except httpx.HTTPError as exc:
            raise MediaUnavailable(f"Graph API unreachable ({type(exc).__name__})") from None
        if not response.is_success:
            raise MediaUnavailable(str(_failure(response)))
        media = response.json()
        size = int(media.get("file_size") or 0)
        if size > max_bytes:
            raise MediaUnavailable(f"{size} bytes, over the {max_bytes}-byte limit")
        return await download(self._http, str(media["url"]), max_bytes)

    async def aclose(self) -> None:
        await self._http.aclose()


def _failure(response: httpx.Response) -> SendFailed:
    try:
        error = response.json()["error"]
        code, message = int(error.get("code", 0)), str(error.get("message", ""))
    except (ValueError, KeyError, TypeError):
        code, message = 0, response.text[:200]
    # 401: the token was refused or expired; every message would fail alike until it is replaced.
    temporary = response.status_code in (401, 429) or response.status_code >= 500 or code in _TEMPORARY_CODES
    retry_after_s = THROTTLE_DELAY_S.get(str(code))
    return SendFailed(
        f"Graph API {response.status_code} code {code}: {message}",
        temporary=temporary,
        retry_after_s=retry_after_s,
        code=str(code) if code else None,
    )
