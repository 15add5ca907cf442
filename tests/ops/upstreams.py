"""What the fake upstreams of tests/ops/conftest.py record: the model's calls in progress, the texts sent."""

from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple


@dataclass
class FakeLLM:
    """Answers "ok: <question>" after `delay_s`, like a slow model would; `waiting` counts the calls
    in progress by API key, so a test can tell which process is waiting on the model."""

    url: str
    delay_s: float = 1.0
    waiting: Counter[str] = field(default_factory=Counter)


class Sent(NamedTuple):
    to: str
    body: str
    sender: str  # which Bedel process sent it: the first segment of its BEDEL_WHATSAPP_API_BASE


@dataclass
class FakeGraph:
    """Meta's Graph API send endpoint: records every text sent, in arrival order."""

    root: str
    sent: list[Sent] = field(default_factory=list)

    def sent_to(self, wa_id: str) -> list[str]:
        return [sent.body for sent in self.sent if sent.to == wa_id]
