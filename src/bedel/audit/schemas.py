import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict

from bedel.audit.models import Action
from bedel.db import UTCDateTime


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    at: UTCDateTime
    actor_kind: str
    actor_name: str
    actor_role: str
    address: str | None
    action: Action
    phone: str | None
    target: str | None
    detail: dict[str, Any] | None


class AuditList(BaseModel):
    items: list[AuditEntryOut]
