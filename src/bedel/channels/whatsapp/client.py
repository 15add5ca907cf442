"""Send text over Meta's WhatsApp Cloud API: `POST {base}/{phone_number_id}/messages`."""

import httpx

from bedel.channels.ports import SendFailed

# Graph error codes that mean "later", not "never": unknown/service errors and rate limits.
_TEMPORARY_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131056})


class WhatsAppClient:
    def __init__(self, *, api_base: str, phone_number_id: str, access_token: str, timeout_s: float = 10.0) -> None:
        self._http = httpx.AsyncClient(
            base_url=api_base.rstrip("/"),
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=timeout_s,
        )
        self._path = f"/{phone_number_id}/messages"

    async def send_text(self, to: str, text: str) -> str:
        return await self._send(to, {"type": "text", "text": {"preview_url": False, "body": text}})

    async def send_template(self, to: str, name: str, language: str, parameters: list[str]) -> str:
        """An approved template, the only kind of message allowed outside the 24-hour window."""
        template: dict[str, object] = {"name": name, "language": {"code": language}}
        if parameters:
            body = [{"type": "text", "text": value} for value in parameters]
            template["components"] = [{"type": "body", "parameters": body}]
        return await self._send(to, {"type": "template", "template": template})

    async def _send(self, to: str, message: dict[str, object]) -> str:
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
        raise _failure(response)

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
    return SendFailed(f"Graph API {response.status_code} code {code}: {message}", temporary=temporary)
