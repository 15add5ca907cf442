"""Conversations for staff and for other packages: list, read, hand over, forget; append messages
outside a chat turn; follow their delivery. Other packages reach threads and messages only through here.

The student record is never touched here.
"""

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bedel.chat.activity import ActivityRepository
from bedel.chat.models import Attachment, DeliveryPath, Message, Role, Thread, ThreadStatus
from bedel.chat.repository import ThreadRepository
from bedel.chat.schemas import AttachmentCreate, ThreadSearch
from bedel.delivery import DeliveryStatus
from bedel.errors import Conflict, NotFound


@dataclass(frozen=True)
class NewMessage:
    """A message the chat flow does not answer (a person's reply, a question during a handoff, a file,
    what a campaign sent)."""

    phone: str
    role: Role
    content: str
    # The channel message it came from, as in `ChatService.ask`.
    source_id: str | None = None
    attachment: AttachmentCreate | None = None
    # Set when the message already left over a channel (a campaign's).
    delivery_status: DeliveryStatus | None = None


async def list_threads(
    session: AsyncSession,
    *,
    phone: str | None,
    status: ThreadStatus | None,
    limit: int,
    offset: int,
) -> Sequence[Thread]:
    return await ThreadRepository.from_session(session).find_many(
        phone=phone, status=status, limit=limit, offset=offset
    )


async def get_thread(session: AsyncSession, thread_id: uuid.UUID) -> Thread:
    thread = await ThreadRepository.from_session(session).get(thread_id)
    if thread is None:
        raise NotFound(f"no thread {thread_id}", field="thread_id")
    return thread


async def list_messages(session: AsyncSession, thread_id: uuid.UUID, *, after: int, limit: int) -> Sequence[Message]:
    await get_thread(session, thread_id)
    return await ThreadRepository.from_session(session).page_messages(thread_id, after, limit)


async def get_attachment(session: AsyncSession, thread_id: uuid.UUID, attachment_id: uuid.UUID) -> Attachment:
    """A file a student sent, with its bytes; 404 when it is not in the thread or was never downloaded."""
    attachment = await ThreadRepository.from_session(session).attachment_content(thread_id, attachment_id)
    if attachment is None:
        raise NotFound(f"no attachment {attachment_id} in thread {thread_id}", field="attachment_id")
    if attachment.content is None:
        raise NotFound(f"attachment {attachment_id} was not downloaded: {attachment.note}", field="attachment_id")
    return attachment


async def forget_thread(session: AsyncSession, thread_id: uuid.UUID) -> None:
    """Delete the conversation and its messages; the next question starts a new thread."""
    thread = await get_thread(session, thread_id)
    threads = ThreadRepository.from_session(session)
    if await threads.is_leased(thread_id):
        raise Conflict("the assistant is answering this conversation right now; try again", retry_after=5)
    await threads.delete(thread)


async def set_status(session: AsyncSession, thread_id: uuid.UUID, status: ThreadStatus, now: datetime) -> Thread:
    """`handoff`: a person answers and the bot stays silent (the wait counts from `now`);
    `active`: the bot answers again, and the person who had it no longer does."""
    thread = await get_thread(session, thread_id)
    await ThreadRepository.from_session(session).set_status(thread, status, now)
    return thread


class TakenByAnother(Conflict):
    code = "taken_by_another"


class NotHandedOff(Conflict):
    code = "not_handed_off"


async def take_thread(session: AsyncSession, thread_id: uuid.UUID, user_id: uuid.UUID, now: datetime) -> Thread:
    """A person takes a handed-off conversation; while one has it, nobody else may take it."""
    thread = await get_thread(session, thread_id)
    if thread.status != ThreadStatus.handoff:
        raise NotHandedOff("the bot answers this conversation; nobody needs to take it")
    if not await ThreadRepository.from_session(session).assign(thread_id, user_id, now):
        raise TakenByAnother("another person has taken this conversation")
    await session.refresh(thread)
    return thread


async def waiting_threads(session: AsyncSession, *, limit: int, offset: int) -> list[tuple[Thread, datetime | None]]:
    """Handed-off conversations, the longest waiting first, with since when each waits (None: answered)."""
    return await ThreadRepository.from_session(session).waiting(limit, offset)


async def count_waiting(session: AsyncSession) -> int:
    """How many conversations are handed off (the inbox's length), counted by the status index."""
    return await ThreadRepository.from_session(session).count_handed_off()


async def search_threads(session: AsyncSession, search: ThreadSearch, *, limit: int, offset: int) -> Sequence[Thread]:
    return await ThreadRepository.from_session(session).search(search, limit, offset)


async def inbox_version(session: AsyncSession) -> str:
    """A value that changes when the handed-off conversations do: for live pages to poll."""
    return await ThreadRepository.from_session(session).inbox_version()


async def thread_version(session: AsyncSession, thread_id: uuid.UUID) -> str:
    """A value that changes when the thread or its messages do (new message, delivery receipt)."""
    return await ThreadRepository.from_session(session).thread_version(thread_id)


async def is_handed_off(session: AsyncSession, phone: str) -> bool:
    found = await ThreadRepository.from_session(session).find_many(phone=phone, status=None, limit=1, offset=0)
    return bool(found) and found[0].status == ThreadStatus.handoff


async def append_message(
    session: AsyncSession,
    phone: str,
    role: Role,
    content: str,
    *,
    source_id: str | None = None,
    attachment: AttachmentCreate | None = None,
    delivery_status: DeliveryStatus | None = None,
) -> uuid.UUID:
    """Append one message as `append_messages` does; while a turn holds the thread this is a `Conflict`."""
    message = NewMessage(phone, role, content, source_id, attachment, delivery_status)
    [message_id] = await append_messages(session, [message])
    if message_id is None:
        raise Conflict("the assistant is answering this conversation right now; try again", retry_after=5)
    return message_id


async def append_messages(session: AsyncSession, messages: Sequence[NewMessage]) -> list[uuid.UUID | None]:
    """Append each message to its phone's thread (started when missing), in a few statements for them all.

    Each takes its thread's next seq, in the order given, and only while no chat turn holds the
    thread's lease, so it never interleaves with a turn in progress. A thread a turn holds takes
    none of its messages: their ids come back None, for the caller to append later, in order.
    """
    counts = Counter(message.phone for message in messages)
    if not counts:
        return []
    threads = ThreadRepository.from_session(session)
    await threads.create(counts)
    seqs = await threads.reserve_seqs(counts)
    ids: list[uuid.UUID | None] = []
    rows: list[dict[str, Any]] = []
    for message in messages:
        if message.phone not in seqs:
            ids.append(None)
            continue
        thread_id, seq = seqs[message.phone]
        seqs[message.phone] = (thread_id, seq + 1)
        ids.append(uuid.uuid4())
        rows.append(
            {
                "id": ids[-1],
                "thread_id": thread_id,
                "seq": seq,
                "role": message.role,
                "content": message.content,
                "source_id": message.source_id,
                "delivery_status": message.delivery_status,
            }
        )
    await threads.add_messages(rows)
    for message_id, message in zip(ids, messages, strict=True):
        if message_id is not None and message.attachment is not None:
            await threads.add_attachment(message_id, message.attachment)
    return ids


async def has_message_from(session: AsyncSession, source_id: str) -> bool:
    """Whether the channel message `source_id` is stored already (a job that runs again stores it once)."""
    return await ThreadRepository.from_session(session).has_message_from(source_id)


async def belongs_to(session: AsyncSession, thread_id: uuid.UUID, phone: str) -> bool:
    return await ThreadRepository.from_session(session).belongs_to(thread_id, phone)


async def is_answer_for(session: AsyncSession, message_id: uuid.UUID, phone: str) -> bool:
    """Whether `message_id` is an assistant answer in the phone's thread."""
    message = await session.get(Message, message_id)
    if message is None or message.role != Role.assistant:
        return False
    return await belongs_to(session, message.thread_id, phone)


async def mark_pending(session: AsyncSession, message_id: uuid.UUID) -> None:
    """The message is queued for sending over a channel."""
    await ThreadRepository.from_session(session).mark_pending(message_id)


async def mark_sent(session: AsyncSession, message_id: uuid.UUID, vendor_message_id: str, path: DeliveryPath) -> None:
    await ThreadRepository.from_session(session).mark_sent(message_id, vendor_message_id, path)


async def mark_failed(
    session: AsyncSession, message_id: uuid.UUID, code: str | None, error: str, path: DeliveryPath | None
) -> None:
    await ThreadRepository.from_session(session).mark_failed(message_id, code, error, path)


async def get_message(session: AsyncSession, message_id: uuid.UUID) -> Message:
    message = await session.get(Message, message_id)
    if message is None:
        raise NotFound(f"no message {message_id}", field="message_id")
    return message


async def apply_receipt(
    session: AsyncSession, vendor_message_id: str, status: DeliveryStatus, code: str | None, error: str | None
) -> bool:
    """Move the message the vendor id names forward to `status`; False when none moved (unknown, or late)."""
    return await ThreadRepository.from_session(session).apply_receipt(vendor_message_id, status, code, error)


async def requeue_throttled(
    session: AsyncSession, vendor_message_id: str, code: str, error: str
) -> tuple[uuid.UUID, str, str] | None:
    """Put a message the vendor throttled back to `pending`: its id, phone and text, or None when it got further."""
    return await ThreadRepository.from_session(session).requeue_throttled(vendor_message_id, code, error)


async def purge_conversations(session: AsyncSession, before: datetime, now: datetime, limit: int) -> int:
    """One batch of retention (`bedel.retention`): up to `limit` messages of conversations silent since
    `before`, or once none are left, up to `limit` of those emptied threads; how many rows went."""
    threads = ThreadRepository.from_session(session)
    if purged := await threads.purge_messages(before, now, limit):
        return purged
    await ActivityRepository.from_session(session).forget_days_before(before.date())
    return await threads.purge_empty_threads(before, now, limit)
