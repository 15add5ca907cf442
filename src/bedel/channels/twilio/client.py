"""Twilio's REST API: send (`POST {base}/2010-04-01/Accounts/{sid}/Messages.json`, WhatsApp or SMS), download media."""

import json

import httpx

from bedel.channels.downloads import download
from bedel.channels.ports import Button, SendFailed
from bedel.tls import tls_context


class TwilioClient:
    """One sender address: `whatsapp:+...` for WhatsApp, a plain `+...` number for SMS.

    With `status_callback`, Twilio posts each message's status changes there.
    """

    def __init__(
        self,
        *,
        api_base: str,
        account_sid: str,
        auth_token: str,
        sender: str,
        status_callback: str | None = None,
        template_sid: str | None = None,
        timeout_s: float = 10.0,
    ):
        self._http = httpx.AsyncClient(
            base_url=api_base.rstrip("/"),
            auth=httpx.BasicAuth(account_sid, auth_token),
            timeout=timeout_s,
            verify=tls_context(),
        )
        self._path = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._sender = sender
        self._status_callback = status_callback
        self._template_sid = template_sid

    async def send_text(self, to: str, text: str) -> str:
        return await self._send(to, {"Body": text})

    async def send_buttons(self, to: str, text: str, footer: str, buttons: list[Button]) -> str:
        # Twilio's quick replies exist only as Content templates approved in advance, so the text goes alone.
        return await self.send_text(to, text)

    async def send_template(self, to: str, content_sid: str, variables: dict[str, str]) -> str:
        """A pre-approved Content API template (`HX...`), e.g. a WhatsApp template outside the 24-hour window."""
        return await self._send(to, {"ContentSid": content_sid, "ContentVariables": json.dumps(variables)})

    async def send_reengagement(self, to: str, text: str) -> str:
        if self._template_sid is None:
            raise SendFailed("no re-engagement template: set BEDEL_TWILIO_REENGAGE_CONTENT_SID", temporary=False)
        return await self.send_template(to, self._template_sid, {"1": text})

    async def _send(self, to: str, fields: dict[str, str]) -> str:
        data = {"To": to, "From": self._sender, **fields}
        if self._status_callback:
            data["StatusCallback"] = self._status_callback
        try:
            response = await self._http.post(self._path, data=data)
        except httpx.HTTPError as exc:
            raise SendFailed(f"Twilio unreachable ({type(exc).__name__})", temporary=True) from None
        if response.is_success:
            return str(response.json()["sid"])
        retry_after = response.headers.get("Retry-After")
        code = None
        try:
            error = response.json()
            code = str(error["code"]) if error.get("code") else None
            detail = f"code {error.get('code')}: {error.get('message')}"
        except ValueError:
            detail = response.text[:200]
        # 401: the credentials were refused; every message would fail alike until they are fixed.
        temporary = response.status_code in (401, 429) or response.status_code >= 500
        raise SendFailed(
            f"Twilio {response.status_code} {detail}",
            temporary=temporary,
            retry_after_s=float(retry_after) if retry_after and retry_after.isdigit() else None,
            code=code,
        )

    async def fetch_media(self, ref: str, max_bytes: int) -> bytes:
        """`ref` is the webhook's MediaUrlN: fetched with the account's credentials, which Twilio
        redirects to its file store (httpx drops the credentials on the way there)."""
        return await download(self._http, ref, max_bytes)

    async def aclose(self) -> None:
        await self._http.aclose()
