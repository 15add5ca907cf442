"""What the channels need from a messaging vendor."""

from typing import Protocol


class SendFailed(Exception):
    """The vendor refused or did not take a message; `temporary` failures are worth retrying."""

    def __init__(self, message: str, *, temporary: bool, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.temporary = temporary
        self.retry_after_s = retry_after_s


class MediaUnavailable(Exception):
    """A student's file was not downloaded: over the size limit, or the vendor failed to hand it over."""


class MessageSender(Protocol):
    async def send_text(self, to: str, text: str) -> str:
        """Send `text` to the vendor address `to`; return the vendor's message id or raise `SendFailed`."""
        ...

    async def fetch_media(self, ref: str, max_bytes: int) -> bytes:
        """Download the file a student sent (`ref` as the webhook named it), refusing it beyond `max_bytes`
        before reading it; raise `MediaUnavailable`."""
        ...

    async def aclose(self) -> None: ...
