"""Lookup keys: a student's identifiers normalised and hashed, so text can be checked against every
student with one indexed query (the chat's output guard) without the table holding them in clear.

Each key is `namespace:normalised value`, hashed. The namespaces are what a piece of text can be
compared on: a phone's last ten digits, an email, an identifier (matrícula or CURP) and a full name;
the kind stored beside a key says which field of the record it came from.
"""

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

# Shorter matrículas read like ordinary numbers ("12", "2024"): withholding them would blank amounts.
MIN_ID_CHARS = 5
# Phones are compared on their last ten digits: "+52 1 55 ...", "+52 55 ..." and "55 ..." are one phone.
PHONE_DIGITS = 10
MIN_PHONE_DIGITS = 8
# A full name of up to this many words is a key as a whole; a longer one by its first words.
NAME_WORDS = 4
CURP = re.compile(r"\b[A-Z]{4}\d{6}[HMX][A-Z]{5}[A-Z\d]\d\b", re.IGNORECASE)
_NOT_LETTERS = re.compile(r"[^\w]+|[\d_]+")


class KeyKind(StrEnum):
    phone = "phone"
    email = "email"
    matricula = "matricula"
    curp = "curp"
    name = "name"


def hash_key(namespace: str, normalised: str) -> str:
    return hashlib.blake2b(f"{namespace}:{normalised}".encode(), digest_size=16).hexdigest()


def phone_keys(digits: str) -> list[str]:
    """The keys a run of digits may be: itself when phone-sized, else every ten-digit window."""
    if len(digits) < MIN_PHONE_DIGITS:
        return []
    if len(digits) <= PHONE_DIGITS:
        return [hash_key("phone", digits)]
    windows = {digits[i : i + PHONE_DIGITS] for i in range(len(digits) - PHONE_DIGITS + 1)}
    return [hash_key("phone", window) for window in windows]


def email_key(email: str) -> str:
    return hash_key("email", email.strip().lower())


def id_key(identifier: str) -> str | None:
    normalised = identifier.strip().lower()
    return hash_key("id", normalised) if len(normalised) >= MIN_ID_CHARS else None


def name_words(text: str) -> list[str]:
    """The words of a name without accents or case: "María  PÉREZ-Gómez" is maria perez gomez."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return [word for word in _NOT_LETTERS.split(plain) if word]


def name_key(words: Iterable[str]) -> str:
    return hash_key("name", " ".join(words))


def student_keys(
    *, phone: str, name: str | None, email: str | None, external_id: str | None, attributes: Mapping[str, Any]
) -> list[tuple[str, KeyKind]]:
    """Every lookup key of one student's record, with the field it came from."""
    keys: list[tuple[str, KeyKind]] = []
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) >= MIN_PHONE_DIGITS:
        keys.append((hash_key("phone", digits[-PHONE_DIGITS:]), KeyKind.phone))
    if email:
        keys.append((email_key(email), KeyKind.email))
    if external_id and (key := id_key(external_id)):
        keys.append((key, KeyKind.matricula))
    words = name_words(name or "")
    if len(words) >= 2:
        keys.append((name_key(words[:NAME_WORDS]), KeyKind.name))
        # Written letter by letter, a name loses where its words end: "M a r c o R u i z".
        keys.append((name_key(["".join(words[:NAME_WORDS])]), KeyKind.name))
    for value in attributes.values():
        if isinstance(value, str) and CURP.fullmatch(value.strip()) and (key := id_key(value)):
            keys.append((key, KeyKind.curp))
    # One student may repeat a value in two fields (a matrícula that is the CURP): one row each key.
    return list(dict(keys).items())
