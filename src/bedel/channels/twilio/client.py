"""Send through Twilio's REST API: `POST {base}/2010-04-01/Accounts/{sid}/Messages.json`.

One client per sender: the WhatsApp sender (`whatsapp:+...`) or an SMS number.
"""

import json

import httpx

from bedel.channels.ports import SendFailed


class TwilioClient:
    def __init__(self, *, api_base: str, account_sid: str, auth_token: str, sender: str, timeout_s: float = 10.0):
        self._http = httpx.AsyncClient(
            base_url=api_base.rstrip("/"), auth=httpx.BasicAuth(account_sid, auth_token), timeout=timeout_s
        )
        self._path = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._sender = sender

    async def send_text(self, to: str, text: str) -> str:
        return await self._send({"To": to, "From": self._sender, "Body": text})

    async def send_template(self, to: str, content_sid: str, variables: dict[str, str]) -> str:
        """A pre-approved Content API template (`HX...`), e.g. a WhatsApp template outside the 24-hour window."""
        return await self._send(
            {"To": to, "From": self._sender, "ContentSid": content_sid, "ContentVariables": json.dumps(variables)}
        )

    async def _send(self, form: dict[str, str]) -> str:
        try:
            response = await self._http.post(self._path, data=form)
        except httpx.HTTPError as exc:
            raise SendFailed(f"Twilio unreachable ({type(exc).__name__})", temporary=True) from None
        if response.is_success:
            return str(response.json()["sid"])
        retry_after = response.headers.get("Retry-After")
        try:
            error = response.json()
            detail = f"code {error.get('code')}: {error.get('message')}"
        except ValueError:
            detail = response.text[:200]
        # 401: the credentials were refused; every message would fail alike until they are fixed.
        temporary = response.status_code in (401, 429) or response.status_code >= 500
        raise SendFailed(
            f"Twilio {response.status_code} {detail}",
            temporary=temporary,
            retry_after_s=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )

    async def aclose(self) -> None:
        await self._http.aclose()
