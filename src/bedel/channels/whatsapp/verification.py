"""Meta signs each webhook body: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the app secret>`."""

import hashlib
import hmac

_PREFIX = "sha256="


def signature_is_valid(body: bytes, header: str | None, app_secret: str) -> bool:
    if not header or not header.startswith(_PREFIX):
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix(_PREFIX).strip().lower())


def verify_token_matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
