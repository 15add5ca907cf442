"""What the channels need from a messaging vendor."""

from dataclasses import dataclass
from typing import Protocol


class SendFailed(Exception):
    """The vendor refused or did not take a message; `temporary` failures are worth retrying.

    `code` is the vendor's error code when it gave one ("131047", "21610"), for
    `delivery_errors.explain`.
    """

    def __init__(
        self, message: str, *, temporary: bool, retry_after_s: float | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.temporary = temporary
        self.retry_after_s = retry_after_s
        self.code = code


@dataclass(frozen=True)
class Button:
    """A reply button: `id` comes back in the student's tap, `title` is what they see (at most 20 characters)."""

    id: str
    title: str


class MediaUnavailable(Exception):
    """A student's file was not downloaded: over the size limit, or the vendor failed to hand it over."""


class MessageSender(Protocol):
    """Each send returns the vendor's message id (which its delivery receipts name) or raises `SendFailed`."""

    async def send_text(self, to: str, text: str) -> str:
        """A free-form text to the vendor address `to`: only within 24 hours of the student's last message."""
        ...

    async def send_buttons(self, to: str, text: str, footer: str, buttons: list[Button]) -> str:
        """`text` with reply buttons under it (free-form too)."""
        ...

    async def send_reengagement(self, to: str, text: str) -> str:
        """The institution's re-engagement template with `text` as its body parameter `{{1}}`: allowed any time."""
        ...

    async def fetch_media(self, ref: str, max_bytes: int) -> bytes:
        """Download the file a student sent (`ref` as the webhook named it), refusing it beyond `max_bytes`
        before reading it; raise `MediaUnavailable`."""
        ...

    async def aclose(self) -> None: ...


class EmailSender(Protocol):
    async def send_email(self, to: str, subject: str, text: str) -> str:
        """Send a plain-text email; return its Message-ID or raise `SendFailed`."""
        ...
