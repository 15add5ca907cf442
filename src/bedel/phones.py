"""Phone normalisation: phones are identifiers first, numbers second."""

import re

import phonenumbers

_SEPARATORS = re.compile(r"[\s\-().]")
_MEXICO_MOBILE_PREFIX = "521"
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also accepts "²" and other scripts' digits


class InvalidPhone(ValueError):
    pass


def normalize_phone(raw: str, default_region: str = "MX") -> str:
    """Return the canonical key (`+` and digits) of a phone in any common shape.

    Mexico's `+52 1 XX...` (what WhatsApp sends) and `+52 XX...` (what school
    records hold) map to the same key, without the `1`: no Mexican area code
    starts with 1, so dropping it never merges two real numbers.
    """
    text = _SEPARATORS.sub("", raw.strip())
    international = text.startswith(("+", "00"))
    digits = text.removeprefix("+").removeprefix("00") if international else text
    if not _DIGITS.fullmatch(digits):
        raise InvalidPhone("a phone may only hold digits, spaces, dashes, dots, parentheses and a leading +")
    if not 8 <= len(digits) <= 15:
        raise InvalidPhone("a phone must have between 8 and 15 digits")
    if not international:
        digits = _national_to_international(digits, default_region)
    # "5211..." is left alone: stripping its 1 would leave a key starting "521" again.
    if digits.startswith(_MEXICO_MOBILE_PREFIX) and len(digits) >= 11 and digits[3] != "1":
        digits = "52" + digits[3:]
    return "+" + digits


def _national_to_international(digits: str, region: str) -> str:
    """Read digits without `+`: as international when valid (WhatsApp's wa_id), else as national."""
    for candidate, hint in (("+" + digits, None), (digits, region)):
        try:
            number = phonenumbers.parse(candidate, hint)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    return digits


def mask_phone(phone: str) -> str:
    """`+52*****7788`: enough to tell conversations apart in logs, not enough to call."""
    visible = phone[-4:] if len(phone) >= 10 else phone[-2:]
    return phone[:3] + "*" * (len(phone) - 3 - len(visible)) + visible


def is_dialable(phone: str) -> bool:
    """Whether a canonical key is a real number a carrier can deliver an SMS or WhatsApp message to.

    Campaigns check 100,000 at once, so the number is first built straight from the key's digits
    (about a third of the cost of parsing it); only what that shortcut cannot confirm is parsed.
    """
    number = _from_digits(phone.removeprefix("+"))
    if number is not None and phonenumbers.is_valid_number(number):
        return True
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(phone)))
    except phonenumbers.NumberParseException:
        return False


def _from_digits(digits: str) -> phonenumbers.PhoneNumber | None:
    if not digits.isdigit() or digits.startswith("0"):
        return None
    # Country calling codes are prefix-free: the first that is one is the one.
    for length in (1, 2, 3):
        code = int(digits[:length])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            national = digits[length:]
            zeros = len(national) - len(national.lstrip("0"))
            return phonenumbers.PhoneNumber(
                country_code=code,
                national_number=int(national or 0),
                italian_leading_zero=True if zeros else None,
                number_of_leading_zeros=zeros if zeros > 1 else None,
            )
    return None
