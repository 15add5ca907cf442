"""Conversations as the channels and the chat flow leave them in the database, for the console's
inbox and conversations tests: threads, messages with what produced them, files, receipts,
ratings, the student's record and the channel they wrote from; and a draft campaign."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bedel.campaigns.models import Campaign, CampaignStatus
from bedel.channels.models import Channel, ChannelContact
from bedel.chat.models import Attachment, DeliveryPath, Message, Role, Thread, ThreadStatus
from bedel.db import create_engine, create_sessionmaker, session_scope
from bedel.delivery import DeliveryStatus
from bedel.feedback.models import AnswerFeedback
from bedel.students.models import Student

SOURCE = {
    "document_id": "calendario-2027",
    "title": "Calendario escolar 2027",
    "snippet": "Las inscripciones cierran el 15 de enero.",
    "score": 0.83,
}


@dataclass
class Said:
    role: Role
    content: str
    ago: timedelta
    sources: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None
    delivery: DeliveryStatus | None = None
    error: str | None = None
    rated: bool | None = None
    files: list[Attachment] = field(default_factory=list)


def student(text: str, minutes_ago: float, *files: Attachment) -> Said:
    return Said(Role.user, text, timedelta(minutes=minutes_ago), files=list(files))


def bot(text: str, minutes_ago: float, *, rated: bool | None = None) -> Said:
    return Said(
        Role.assistant, text, timedelta(minutes=minutes_ago), sources=[SOURCE], model="gpt-4o-mini", rated=rated
    )


def staff(
    text: str, minutes_ago: float, delivery: DeliveryStatus = DeliveryStatus.sent, error: str | None = None
) -> Said:
    return Said(Role.staff, text, timedelta(minutes=minutes_ago), delivery=delivery, error=error)


@dataclass
class Conversation:
    phone: str
    said: list[Said]
    now: datetime
    # Minutes since a person took over; None: the bot still answers.
    handoff_minutes_ago: float | None = None
    name: str | None = None
    external_id: str | None = None
    channel: Channel | None = Channel.whatsapp
    last_inbound_minutes_ago: float = 30
    updated_minutes_ago: float = 0


async def seed(database_url: str, *conversations: Conversation) -> list[uuid.UUID]:
    """Store each conversation; returns their thread ids, in order."""
    engine = create_engine(database_url)
    ids = []
    try:
        async for session in session_scope(create_sessionmaker(engine)):
            for conversation in conversations:
                ids.append(await _add(session, conversation))
    finally:
        await engine.dispose()
    return ids


async def _add(session: AsyncSession, conversation: Conversation) -> uuid.UUID:
    now = conversation.now
    handoff = conversation.handoff_minutes_ago
    thread = Thread(
        id=uuid.uuid4(),
        phone=conversation.phone,
        status=ThreadStatus.handoff if handoff is not None else ThreadStatus.active,
        handoff_at=now - timedelta(minutes=handoff) if handoff is not None else None,
        message_count=len(conversation.said),
        updated_at=now - timedelta(minutes=conversation.updated_minutes_ago),
    )
    session.add(thread)
    # Threads and messages have no ORM relationship to order their inserts by.
    await session.flush()
    for seq, said in enumerate(conversation.said, start=1):
        message = Message(
            id=uuid.uuid4(),
            thread_id=thread.id,
            seq=seq,
            role=said.role,
            content=said.content,
            sources=said.sources,
            model=said.model,
            input_tokens=812 if said.model else 0,
            output_tokens=64 if said.model else 0,
            latency_ms=1450 if said.model else None,
            delivery_status=said.delivery,
            delivery_error=said.error,
            delivery_path=DeliveryPath.free_form if said.delivery else None,
            created_at=now - said.ago,
            updated_at=now - said.ago,
            attachments=said.files,
        )
        session.add(message)
        if said.rated is not None:
            await session.flush()
            session.add(AnswerFeedback(message_id=message.id, helpful=said.rated))
    if conversation.name or conversation.external_id:
        session.add(Student(phone=conversation.phone, name=conversation.name, external_id=conversation.external_id))
    if conversation.channel is not None:
        session.add(
            ChannelContact(
                phone=conversation.phone,
                channel=conversation.channel,
                address=conversation.phone.removeprefix("+"),
                last_inbound_at=now - timedelta(minutes=conversation.last_inbound_minutes_ago),
            )
        )
    await session.flush()
    return thread.id


def voice_note() -> Attachment:
    return Attachment(
        kind="audio",
        mime_type="audio/ogg",
        vendor_ref="1013859600285441",
        content=b"OggS-voice",
        downloaded=True,
        transcript="quiero mi constancia",
    )


def photo() -> Attachment:
    return Attachment(
        kind="image",
        mime_type="image/jpeg",
        vendor_ref="1003383421387256",
        content=b"\xff\xd8jpeg",
        downloaded=True,
        caption="Mi credencial",
    )


def draft_campaign() -> Campaign:
    """A campaign written but not started (starting it would change what it holds)."""
    return Campaign(
        name="Aviso",
        channel="sms",
        message={"text": "Hola"},
        audience={"filter": "semestre == 1"},
        status=CampaignStatus.draft,
        outages=0,
    )
