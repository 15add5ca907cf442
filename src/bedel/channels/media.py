"""Voice notes and files students send: checked before download, kept for staff, and the polite replies."""

from collections.abc import Mapping
from dataclasses import replace

import structlog

from bedel.channels.models import Channel
from bedel.channels.ports import MediaUnavailable, MessageSender
from bedel.channels.schemas import InboundMedia, MediaKind
from bedel.chat.schemas import AttachmentCreate
from bedel.errors import UpstreamUnavailable
from bedel.llm.ports import Transcriber
from bedel.phones import mask_phone
from bedel.texts.catalog import Texts

log = structlog.get_logger()

# What each kind may be; anything else is not downloaded. Meta's and Twilio's WhatsApp send these.
ACCEPTED_TYPES = {
    MediaKind.audio: frozenset(
        {"audio/ogg", "audio/opus", "audio/mpeg", "audio/mp4", "audio/aac", "audio/amr", "audio/wav", "audio/webm"}
    ),
    MediaKind.image: frozenset({"image/jpeg", "image/png", "image/webp"}),
    MediaKind.document: frozenset(
        {
            "application/pdf",
            "application/msword",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.ms-excel",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "text/plain",
            "image/jpeg",
            "image/png",
        }
    ),
}

# What the thread shows in place of the words of a file (a voice note's transcript replaces it).
_LABELS = {MediaKind.audio: "[nota de voz]", MediaKind.image: "[imagen]", MediaKind.document: "[documento]"}


async def receive_media(sender: MessageSender | None, media: InboundMedia, max_bytes: int) -> AttachmentCreate:
    """The file as an attachment: with its bytes, or with a note saying why it was not downloaded.

    The type is checked before anything is requested, and the size before the file's body is read.
    """
    attachment = AttachmentCreate(
        kind=media.kind,
        mime_type=media.mime_type,
        vendor_ref=media.ref,
        filename=media.filename,
        caption=media.caption,
    )
    mime_type = media.mime_type.split(";")[0].strip().lower()
    if mime_type not in ACCEPTED_TYPES[media.kind]:
        return replace(attachment, note=f"{mime_type} is not a type Bedel keeps for a {media.kind}")
    if sender is None:
        return replace(attachment, note=f"the channel is off, so the {media.kind} was not downloaded")
    try:
        content = await sender.fetch_media(media.ref, max_bytes)
    except MediaUnavailable as exc:
        return replace(attachment, note=f"not downloaded: {exc}")
    return replace(attachment, content=content, size_bytes=len(content))


def describe(media: InboundMedia) -> str:
    """The message text that stands for a file in the thread."""
    parts = [_LABELS[media.kind], media.filename, media.caption]
    return " ".join(part for part in parts if part)


def reply_for(attachment: AttachmentCreate, texts: Texts) -> str:
    if attachment.content is None:
        return texts.file_refused
    return texts.voice_note if attachment.kind == MediaKind.audio else texts.file_kept


class MediaInbox:
    """Takes the files students send (downloaded within `max_bytes`) and transcribes their voice notes."""

    def __init__(
        self, senders: Mapping[Channel, MessageSender], transcriber: Transcriber | None, *, max_bytes: int
    ) -> None:
        self._senders = senders
        self._transcriber = transcriber
        self._max_bytes = max_bytes

    async def receive(self, channel: Channel, media: InboundMedia) -> AttachmentCreate:
        return await receive_media(self._senders.get(channel), media, self._max_bytes)

    async def transcribe(self, phone: str, attachment: AttachmentCreate) -> tuple[str, str | None]:
        """The transcript, or "" and why there is none."""
        if self._transcriber is None:
            return "", "not transcribed: no transcription model is configured (BEDEL_TRANSCRIPTION_MODEL)"
        assert attachment.content is not None
        try:
            transcript = await self._transcriber.transcribe(attachment.content, attachment.mime_type)
        except UpstreamUnavailable as exc:
            log.warning("voice_note_not_transcribed", phone=mask_phone(phone))
            return "", f"not transcribed: {exc.message}"
        return transcript, None if transcript else "not transcribed: the transcript was empty"
