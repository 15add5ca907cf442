"""Voice notes and files students send: checked before download, kept for staff, and the polite replies."""

from dataclasses import replace
from typing import Any

from bedel.channels.ports import MediaUnavailable, MessageSender
from bedel.channels.schemas import InboundMedia, MediaKind
from bedel.chat.schemas import AttachmentCreate
from bedel.texts.catalog import Texts

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


def media_from(payload: dict[str, Any] | None) -> InboundMedia | None:
    """The media of a ledgered message, as `accept_inbound` wrote it into the job's payload."""
    if payload is None:
        return None
    return InboundMedia(
        MediaKind(payload["kind"]), payload["mime_type"], payload["ref"], payload["caption"], payload["filename"]
    )
