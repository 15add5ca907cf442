"""Reading what a student writes to prove who they are: a student id, a date, a fact of their record."""

import re
from datetime import date

from bedel.terms import fold

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("enero", "ene"),
            ("febrero", "feb"),
            ("marzo", "mar"),
            ("abril", "abr"),
            ("mayo", "may"),
            ("junio", "jun"),
            ("julio", "jul"),
            ("agosto", "ago"),
            ("septiembre", "setiembre", "sep", "sept"),
            ("octubre", "oct"),
            ("noviembre", "nov"),
            ("diciembre", "dic"),
        ),
        start=1,
    )
    for name in names
}
# Day first, as Mexican records and students write dates: 15/03/2004, 15-03-2004, 15.03.2004.
_DAY_FIRST = re.compile(r"\b(\d{1,2})[/\-.](\d{1,2})[/\-.](\d{4})\b")
_ISO = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_IN_WORDS = re.compile(r"\b(\d{1,2})\s+(?:de\s+)?([a-z]+)\.?\s+(?:de\s+|del\s+)?(\d{4})\b")
_WORD_EDGES = "\"'.,;:!¡()[]"
_STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-/]{2,99}")
# A student id comes alone or in a short sentence ("mi matrícula es A01230002"), not in a paragraph.
_MAX_WORDS_WITH_ID = 6
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def parse_date(text: str) -> date | None:
    """The first date in `text`, written day first, as ISO, or in Spanish words ("15 de marzo de 2004")."""
    folded = fold(text)
    found: tuple[int, int, int] | None = None
    if match := _ISO.search(folded):
        found = int(match[1]), int(match[2]), int(match[3])
    elif match := _DAY_FIRST.search(folded):
        found = int(match[3]), int(match[2]), int(match[1])
    elif (match := _IN_WORDS.search(folded)) and match[2] in _MONTHS:
        found = int(match[3]), _MONTHS[match[2]], int(match[1])
    if found is None:
        return None
    try:
        return date(*found)
    except ValueError:
        return None


def student_id_in(text: str) -> str | None:
    """The student id a short message gives: its one word with a digit that is not a date."""
    words = [word.strip(_WORD_EDGES) for word in text.split()]
    if is_question(text) or len(words) > _MAX_WORDS_WITH_ID:
        return None
    found = [
        word
        for word in words
        if _STUDENT_ID.fullmatch(word) and any(char.isdigit() for char in word) and parse_date(word) is None
    ]
    return found[0] if len(found) == 1 else None


def is_question(text: str) -> bool:
    return "?" in text or "¿" in text


def same_fact(recorded: object, given: str) -> bool:
    """Whether what the student wrote is what the record holds: dates as dates, anything else
    ignoring case, accents, spaces and punctuation."""
    recorded_text = str(recorded).strip()
    if not recorded_text or not given.strip():
        return False
    recorded_date = parse_date(recorded_text)
    if recorded_date is not None:
        return parse_date(given) == recorded_date
    return _NOT_ALNUM.sub("", fold(recorded_text)) == _NOT_ALNUM.sub("", fold(given))
