"""Staff views of conversations: list, read, hand over, forget. The student record is never touched here."""

import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bedel.chat.models import Attachment, Message, Role, Thread, ThreadStatus
from bedel.chat.repository import ThreadRepository
from bedel.chat.schemas import AttachmentCreate
from bedel.errors import Conflict, NotFound

# Taken and given back in one transaction: it only has to keep other turns out meanwhile.
_APPEND_LEASE = timedelta(seconds=30)


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


async def set_status(session: AsyncSession, thread_id: uuid.UUID, status: ThreadStatus) -> Thread:
    """`handoff`: a person answers and the bot stays silent; `active`: the bot answers again."""
    thread = await get_thread(session, thread_id)
    thread.status = status
    await session.flush()
    return thread


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
) -> uuid.UUID:
    """Add a message the chat flow does not answer (a person's reply, a question during a handoff, a file).

    `source_id` names the channel message it came from, as in `ChatService.ask`.

    It takes the next seq the way a chat turn does, under the thread's lease, so it
    never interleaves with a turn in progress: while one runs this is a `Conflict`.
    """
    threads = ThreadRepository.from_session(session)
    token = uuid.uuid4()
    turn = await threads.open_turn(phone, token, _APPEND_LEASE)
    if turn is None:
        await threads.create(phone)
        turn = await threads.open_turn(phone, token, _APPEND_LEASE)
    if turn is None:
        raise Conflict("the assistant is answering this conversation right now; try again", retry_after=5)
    message_id = await threads.add_message(
        thread_id=turn.thread_id, seq=turn.seq, role=role, content=content, source_id=source_id
    )
    if attachment is not None:
        await threads.add_attachment(message_id, attachment)
    await threads.close_turn(turn.thread_id, token)
    return message_id
