"""Twilio's REST API: send WhatsApp text (`POST {base}/2010-04-01/Accounts/{sid}/Messages.json`), download media."""

import httpx

from bedel.channels.downloads import download
from bedel.channels.ports import SendFailed


class TwilioClient:
    def __init__(self, *, api_base: str, account_sid: str, auth_token: str, sender: str, timeout_s: float = 10.0):
        self._http = httpx.AsyncClient(
            base_url=api_base.rstrip("/"), auth=httpx.BasicAuth(account_sid, auth_token), timeout=timeout_s
        )
        self._path = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._sender = sender

    async def send_text(self, to: str, text: str) -> str:
        try:
            response = await self._http.post(self._path, data={"To": to, "From": self._sender, "Body": text})
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
        temporary = response.status_code == 429 or response.status_code >= 500
        raise SendFailed(
            f"Twilio {response.status_code} {detail}",
            temporary=temporary,
            retry_after_s=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )

    async def fetch_media(self, ref: str, max_bytes: int) -> bytes:
        """`ref` is the webhook's MediaUrlN: fetched with the account's credentials, which Twilio
        redirects to its file store (httpx drops the credentials on the way there)."""
        return await download(self._http, ref, max_bytes)

    async def aclose(self) -> None:
        await self._http.aclose()
