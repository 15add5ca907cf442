"""Download a vendor's file over HTTP without ever holding more than the size limit."""

import httpx

from bedel.channels.ports import MediaUnavailable


async def download(http: httpx.AsyncClient, url: str, max_bytes: int) -> bytes:
    """GET `url`, refused by its Content-Length before the body is read, and cut off if it grows past the limit."""
    try:
        async with http.stream("GET", url, follow_redirects=True) as response:
            if not response.is_success:
                raise MediaUnavailable(f"the download answered {response.status_code}")
            declared = int(response.headers.get("content-length") or 0)
            if declared > max_bytes:
                raise MediaUnavailable(f"{declared} bytes, over the {max_bytes}-byte limit")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise MediaUnavailable(f"over the {max_bytes}-byte limit")
            return bytes(body)
    except httpx.HTTPError as exc:
        raise MediaUnavailable(f"the download failed ({type(exc).__name__})") from None
