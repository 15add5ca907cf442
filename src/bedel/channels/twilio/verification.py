"""Twilio signs the URL it called plus the sorted form fields (`X-Twilio-Signature`); its own validator checks it."""

from twilio.request_validator import RequestValidator


def signature_is_valid(url: str, form: dict[str, str], header: str | None, auth_token: str) -> bool:
    if not header:
        return False
    return bool(RequestValidator(auth_token).validate(url, form, header))
