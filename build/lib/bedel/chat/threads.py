"""Staff views of conversations: list, read, forget. The student record is never touched here."""

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from bedel.chat.models import Message, Thread, ThreadStatus
from bedel.chat.repository import ThreadRepository
from bedel.errors import Conflict, NotFound


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


async def forget_thread(session: AsyncSession, thread_id: uuid.UUID) -> None:
    """Delete the conversation and its messages; the next question starts a new thread."""
    thread = await get_thread(session, thread_id)
    threads = ThreadRepository.from_session(session)
    if await threads.is_leased(thread_id):
        raise Conflict("the assistant is answering this conversation right now; try again", retry_after=5)
    await threads.delete(thread)
