"""The campaign job kind as a typed value: what its JSON payload holds, and the key that orders it."""

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class RecordJob:
    """Write a sent campaign message into the student's thread, once the turn that held the thread is over."""

    kind: ClassVar[str] = "campaigns.record"

    phone: str
    text: str

    @property
    def key(self) -> str:
        """One phone's messages are written one at a time, in the order they were sent."""
        return f"record:{self.phone}"

    def to_payload(self) -> dict[str, Any]:
        return {"phone": self.phone, "text": self.text}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "RecordJob":
        return cls(payload["phone"], payload["text"])
