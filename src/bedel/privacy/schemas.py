import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict

from bedel.db import UTCDateTime


class ErasureReceipt(BaseModel):
    """An erasure, as the school reports it to the student: the receipt id, when, and what went."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    erased_at: UTCDateTime
    requested_by: str
    removed: dict[str, int]


class StudentExport(BaseModel):
    """Everything held about one student, by kind: each kind a list of rows as stored."""

    phone: str
    exported_at: UTCDateTime
    holdings: dict[str, list[dict[str, Any]]]
