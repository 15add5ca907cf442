"""How the columns of a student list were understood, for staff to check and correct.

Each column is read by its name through the field catalog (the record field it fills, or
the concept it serves); its values say what it holds where the name says nothing (amounts,
dates, emails, phones), and show when a name was read against its values. Pure functions.
"""

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from bedel.phones import InvalidPhone, normalize_phone
from bedel.students.fields import FieldCatalog, FieldKind, IdentityRole

ValueKind = Literal["email", "phone", "date", "money", "number", "text"]

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}([ T][\d:.]+)?|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}")
_MONEY = re.compile(
    r"(?i)(\$|mxn|usd|eur|us\$)\s*-?[\d.,]*\d[\d.,]*\s*(mxn|usd|eur|pesos)?|-?[\d.,]*\d\s*(mxn|usd|eur|pesos)"
)
_NUMBER = re.compile(r"-?\d+([.,]\d+)?")
_PHONE = re.compile(r"\+?[\d\s().-]{8,20}")
# The kinds of value each kind of concept may hold; text holds anything but an email or a phone.
_FITS: dict[FieldKind, frozenset[str]] = {
    "money": frozenset({"money", "number"}),
    "number": frozenset({"number", "text"}),
    "date": frozenset({"date", "text"}),
    "text": frozenset({"text", "number", "money", "date"}),
}


class ColumnReading(BaseModel):
    """One column: what it fills or serves, and what its values look like."""

    column: str
    field: IdentityRole | None = Field(description="The record's own field it fills: phone, name, email, external_id")
    concept: str | None = Field(description="The catalog concept it serves (balance, payment_due...)")
    label: str = Field(description="How Bedel names it to students")
    kind: FieldKind | None = Field(description="How the concept's values are shown: money, number, text or date")
    values: ValueKind | None = Field(description="What its values look like; null when none is filled")
    filled: int = Field(description="Rows (or students) with a value in it")

    @property
    def understood(self) -> bool:
        return self.field is not None or self.concept is not None

    @property
    def doubtful(self) -> bool:
        """Read by name as a concept its values do not fit (a balance column holding dates)."""
        if self.kind is None or self.values is None or self.field is not None:
            return False
        return self.values not in _FITS[self.kind]


def read_columns(
    catalog: FieldCatalog, filled: Mapping[str, int], samples: Mapping[str, Sequence[Any]]
) -> list[ColumnReading]:
    """Every column in the given order, read by name and by its sample values."""
    readings = []
    for column, count in filled.items():
        concept = catalog.concept_for_column(column)
        readings.append(
            ColumnReading(
                column=column,
                field=catalog.identity_role(column),
                concept=concept.key if concept else None,
                label=catalog.label_for(column),
                kind=concept.kind if concept else None,
                values=value_kind(samples.get(column, ())),
                filled=count,
            )
        )
    return readings


def column_warnings(readings: Sequence[ColumnReading]) -> list[str]:
    """What staff should look at: columns nothing understood, and names read against their values."""
    warnings = []
    for reading in readings:
        seen = f" (its values look like {_KIND_WORDS[reading.values]})" if reading.values else ""
        if not reading.understood:
            warnings.append(
                f"column '{reading.column}' was not understood{seen}: it is kept under its own name; "
                "to give it a meaning, add it to a concept's columns in BEDEL_FIELDS_FILE"
            )
        elif reading.doubtful:
            warnings.append(
                f"column '{reading.column}' is read as '{reading.label}'{seen}; "
                "if that is wrong, move it to another concept in BEDEL_FIELDS_FILE"
            )
    return warnings


_KIND_WORDS: dict[str, str] = {
    "email": "emails",
    "phone": "phones",
    "date": "dates",
    "money": "amounts of money",
    "number": "numbers",
    "text": "text",
}


def value_kind(values: Sequence[Any]) -> ValueKind | None:
    """The kind every given value has; mixed numbers and amounts are amounts, other mixes text."""
    kinds = {_kind_of(value) for value in values if value is not None and value != ""}
    if not kinds:
        return None
    if len(kinds) == 1:
        return kinds.pop()
    if kinds == {"money", "number"}:
        return "money"
    return "text"


def _kind_of(value: Any) -> ValueKind:
    if isinstance(value, bool):
        return "text"
    if isinstance(value, int | float):
        # A long whole number is a phone written without separators (as Excel keeps it).
        return "phone" if isinstance(value, int) and len(str(abs(value))) >= 10 and _is_phone(str(value)) else "number"
    text = str(value).strip()
    if _EMAIL.fullmatch(text):
        return "email"
    if _DATE.fullmatch(text):
        return "date"
    if _MONEY.fullmatch(text):
        return "money"
    if _NUMBER.fullmatch(text.replace(",", "")) and not (len(text) >= 10 and text.isdigit()):
        return "number"
    if _PHONE.fullmatch(text) and sum(ch.isdigit() for ch in text) >= 10 and _is_phone(text):
        return "phone"
    return "text"


def _is_phone(text: str) -> bool:
    try:
        normalize_phone(text)
    except InvalidPhone:
        return False
    return True
