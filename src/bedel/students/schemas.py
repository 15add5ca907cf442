import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from bedel.db import UTCDateTime
from bedel.students.columns import ColumnReading

MAX_NAME_CHARS = 200
MAX_EMAIL_CHARS = 320
MAX_EXTERNAL_ID_CHARS = 100
UNSTORABLE_MESSAGE = "holds a NUL character or a lone surrogate escape, which cannot be stored"
# Databases refuse NUL in text and JSONB; lone surrogates (valid JSON escapes) cannot be encoded.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_CHARS)]
Email = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_EMAIL_CHARS)]
ExternalId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_EXTERNAL_ID_CHARS)]


@dataclass(frozen=True)
class StudentRecord:
    """The caller's own record, the only one a prompt ever carries."""

    phone: str
    name: str | None
    external_id: str | None
    email: str | None
    attributes: dict[str, Any] = field(default_factory=dict)


class StudentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    phone: str = Field(description="Canonical key: `+` and digits; Mexico without the mobile `1`.")
    external_id: str | None
    name: str | None
    email: str | None
    attributes: dict[str, Any]
    created_at: UTCDateTime
    updated_at: UTCDateTime


class StudentUpdate(BaseModel):
    """The whole record of one student: fields left out are cleared."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Ana López",
                    "email": "ana.lopez@example.edu.mx",
                    "external_id": "A01234567",
                    "attributes": {"carrera": "Derecho", "adeudo": 4500},
                }
            ]
        },
    )

    name: Name | None = None
    email: Email | None = None
    external_id: ExternalId | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _storable(self) -> "StudentUpdate":
        if not is_storable([self.name, self.email, self.external_id, self.attributes]):
            raise ValueError(UNSTORABLE_MESSAGE)
        return self


RowProblem = Literal[
    "invalid_phone",
    "no_phone",
    "repeated_phone",
    "ambiguous_columns",
    "too_long",
    "not_text",
    "unstorable",
    "cell_count",
    "not_object",
    "invalid_json",
]


class RowError(BaseModel):
    """A row that was not loaded: `line` for CSV, Excel and JSONL, `item` (1-based) for a JSON array."""

    line: int | None = None
    item: int | None = None
    code: RowProblem = Field(description="Why, as a code: invalid_phone, no_phone, repeated_phone...")
    message: str
    value: str | None = Field(
        default=None, description="What is at fault: the phone as written, or the field that is too long"
    )

    @property
    def location(self) -> str:
        return f"line {self.line}" if self.line is not None else f"item {self.item}"


class ImportReport(BaseModel):
    created: int
    updated: int
    errors: list[RowError]
    columns: list[ColumnReading] = Field(default_factory=list, description="How each column of the file was understood")
    warnings: list[str] = Field(
        default_factory=list, description="Columns nothing understood, or read against their values"
    )


class FieldsReport(BaseModel):
    """How the columns of the loaded list are understood: what staff correct with BEDEL_FIELDS_FILE."""

    students: int = Field(description="Students on the list")
    sampled: int = Field(description="Students whose columns were read (the most recently loaded)")
    record_fields: dict[str, int] = Field(description="Students with a phone, name, email and external_id (matrícula)")
    columns: list[ColumnReading] = Field(description="The other columns, as the sampled students hold them")
    warnings: list[str]


def is_storable(value: Any) -> bool:
    """Whether every string in a JSON-like value can be stored as text or JSONB."""
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is None
    if isinstance(value, dict):
        return all(is_storable(key) and is_storable(item) for key, item in value.items())
    if isinstance(value, list):
        return all(map(is_storable, value))
    if isinstance(value, float):
        return math.isfinite(value)  # JSON has no NaN or Infinity, and PostgreSQL's JSONB refuses them
    return True
