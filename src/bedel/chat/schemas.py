import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import Select

from bedel.chat.models import DeliveryPath, Role, ThreadStatus
from bedel.db import UTCDateTime
from bedel.delivery import DeliveryStatus
from bedel.phones import normalize_phone

MAX_QUESTION_CHARS = 4000


def _storable_text(text: str) -> str:
    if "\x00" in text:
        raise ValueError("text may not contain NUL characters")
    return text


Phone = Annotated[str, StringConstraints(max_length=40), AfterValidator(normalize_phone)]
Question = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUESTION_CHARS),
    AfterValidator(_storable_text),
]


class AssistantOverrides(BaseModel):
    """Per-request assistant settings; only staff keys may send them."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, min_length=1, max_length=200)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_output_tokens: int | None = Field(default=None, ge=1, le=32000)
    history_token_budget: int | None = Field(default=None, ge=0, le=200000)
    language: str | None = Field(default=None, min_length=2, max_length=10)
    instructions: str | None = Field(default=None, min_length=1, max_length=20000)


class ChatRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"phone": "+52155667788", "question": "Hola, necesito ayuda."}]},
    )

    phone: Phone
    question: Question
    stream: bool = False
    assistant: AssistantOverrides | None = None


class StudentSummary(BaseModel):
    known: bool
    name: str | None


class Source(BaseModel):
    document_id: str
    title: str
    snippet: str
    score: float


class UsageOut(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int


class ChatAnswer(BaseModel):
    answer: str
    thread_id: uuid.UUID
    message_id: uuid.UUID
    student: StudentSummary
    sources: list[Source]
    handoff: bool
    usage: UsageOut
    model: str
    latency_ms: int


class ThreadOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    phone: str
    status: ThreadStatus
    message_count: int
    created_at: UTCDateTime
    updated_at: UTCDateTime


class ThreadUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: ThreadStatus = Field(
        description="`handoff`: a person takes over and the bot stops answering; `active`: back to the bot."
    )


class StaffMessageCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": "Hola, soy Ana de servicios escolares."}]}
    )

    text: Question


class ThreadList(BaseModel):
    items: list[ThreadOut]


@dataclass(frozen=True)
class AttachmentCreate:
    """A file received with a channel message, ready to store with it."""

    kind: str
    mime_type: str
    vendor_ref: str
    size_bytes: int | None = None
    filename: str | None = None
    caption: str | None = None
    content: bytes | None = None
    transcript: str | None = None
    note: str | None = None


class AttachmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str = Field(description="audio, image or document.")
    mime_type: str
    size_bytes: int | None
    filename: str | None
    caption: str | None
    transcript: str | None = Field(description="What a voice note said, when it was transcribed.")
    note: str | None = Field(description="Why the file was not downloaded or a voice note not transcribed.")
    downloaded: bool = Field(description="Whether the file itself is kept: GET .../attachments/{id} returns it.")


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    seq: int
    role: Role
    content: str
    sources: list[dict[str, Any]]
    handoff: bool
    model: str | None
    input_tokens: int
    output_tokens: int
    usage_estimated: bool
    latency_ms: int | None
    delivery_status: DeliveryStatus | None = Field(
        description="For messages sent over a channel: pending, sent, delivered, read or failed (from the "
        "vendor's receipts; it only moves forward)."
    )
    delivery_path: DeliveryPath | None = Field(
        description="How it left: free_form within the student's 24-hour window; template, sms or email past it."
    )
    delivery_error_code: str | None = Field(description="The vendor's error code when it failed (e.g. 131047).")
    delivery_error: str | None = Field(description="Why it failed, in Spanish, for the staff reading the thread.")
    attachments: list[AttachmentOut] = Field(description="Voice notes, images and documents sent with it.")
    created_at: UTCDateTime


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_after: int | None = Field(description="Pass as `after` to get the next page; null on the last page.")


@dataclass(frozen=True)
class ThreadSearch:
    """What to find conversations by; the sets of phones and answers come as subqueries from their owners."""

    # A message contains the words, or the thread's phone is `phone` or among `phones`.
    words: str = ""
    phone: str | None = None
    phones: Select[str] | None = None
    status: ThreadStatus | None = None
    phones_on_channel: Select[str] | None = None
    active_from: datetime | None = None
    active_until: datetime | None = None
    with_answers: Select[uuid.UUID] | None = None
