import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from bedel.db import Base, utcnow


class ErasureRequest(Base):
    """A student's data erased on request: when, who asked, and how many rows of each kind went.

    It names no student: their identifiers are what was erased. The id is the receipt
    the school gives the student, proof that the request was honoured.
    """

    __tablename__ = "erasure_requests"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    erased_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # Who asked: an API key's digest ("key:3f2a...") or a command run on the server ("cli").
    requested_by: Mapped[str] = mapped_column(String(200))
    # Rows removed per holding, e.g. {"messages": 120, "threads": 1}.
    removed: Mapped[dict[str, Any]]
