"""Conversations (agents and admins): find any conversation, read it with what produced each
answer, and, when it waits for a person, take it, reply and hand it back to the bot."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import BackgroundTasks, Form, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.audit import service as audit
from bedel.audit.models import Action
from bedel.channels import service as channels
from bedel.channels.models import Channel
from bedel.chat import threads
from bedel.chat.models import Role, Thread, ThreadStatus
from bedel.chat.schemas import MAX_QUESTION_CHARS, ThreadSearch
from bedel.config import ReengageFallback
from bedel.console.auth import AnyStaff, console_caller, console_router
from bedel.console.catalogue import strings
from bedel.console.live import changes_stream
from bedel.console.rendering import page_language, render, see_other
from bedel.dependencies import DBSession, get_state
from bedel.errors import BedelError, InvalidInput
from bedel.feedback import service as feedback
from bedel.phones import InvalidPhone, normalize_phone
from bedel.students import service as students
from bedel.users import service as users
from bedel.users.models import StaffUser

router = console_router()

PAGE = "/console/conversations"
PAGE_SIZE = 25
MAX_PAGE = 400
# The latest messages of a thread shown at once; the API pages through the rest.
HISTORY = 500


@dataclass(frozen=True)
class Filters:
    """The search form as typed, checked."""

    q: str = ""
    status: ThreadStatus | None = None
    channel: Channel | None = None
    since: date | None = None
    until: date | None = None
    rated_no: bool = False

    def search(self) -> ThreadSearch:
        phone = _as_phone(self.q)
        return ThreadSearch(
            words=self.q,
            phone=phone,
            phones=students.phones_matching(self.q) if self.q else None,
            status=self.status,
            phones_on_channel=channels.phones_on_channel(self.channel) if self.channel else None,
            active_from=datetime.combine(self.since, time.min, tzinfo=UTC) if self.since else None,
            active_until=datetime.combine(self.until + timedelta(days=1), time.min, tzinfo=UTC) if self.until else None,
            with_answers=feedback.answers_rated_unhelpful() if self.rated_no else None,
        )

    def query(self, page: int) -> str:
        values = {
            "q": self.q,
            "status": self.status or "",
            "channel": self.channel or "",
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
            "rated_no": "1" if self.rated_no else "",
            "page": str(page),
        }
        return urlencode({key: value for key, value in values.items() if value})


class InvalidFilter(InvalidInput):
    code = "invalid_filter"


def _as_phone(text: str) -> str | None:
    """The canonical phone, when what was typed is one (mostly digits)."""
    digits = sum(char.isdigit() for char in text)
    if digits < 7 or digits < len(text.replace(" ", "").replace("+", "").replace("-", "")) * 0.8:
        return None
    try:
        return normalize_phone(text)
    except InvalidPhone:
        return None


def _filters(q: str, status: str, channel: str, since: str, until: str, rated_no: str) -> Filters:
    try:
        return Filters(
            q=" ".join(q.split()),
            status=ThreadStatus(status) if status else None,
            channel=Channel(channel) if channel else None,
            since=date.fromisoformat(since) if since else None,
            until=date.fromisoformat(until) if until else None,
            rated_no=rated_no == "1",
        )
    except ValueError as exc:
        raise InvalidFilter(str(exc)) from None


@router.get("/conversations")
async def conversations_page(
    request: Request,
    session: DBSession,
    user: AnyStaff,
    q: Annotated[str, Query(max_length=200)] = "",
    status: Annotated[str, Query(max_length=20)] = "",
    channel: Annotated[str, Query(max_length=20)] = "",
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
    rated_no: Annotated[str, Query(max_length=1)] = "",
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> Response:
    words = strings(page_language(request))
    try:
        filters = _filters(q, status, channel, since, until, rated_no)
    except InvalidFilter:
        return _search_page(request, user, Filters(q=q[:200]), [], page, more=False, error=words["conv_bad_filter"])
    found = await threads.search_threads(session, filters.search(), limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    rows = await _rows(session, found[:PAGE_SIZE])
    return _search_page(request, user, filters, rows, page, more=len(found) > PAGE_SIZE)


def _search_page(
    request: Request,
    user: StaffUser,
    filters: Filters,
    rows: list[dict[str, Any]],
    page: int,
    *,
    more: bool,
    error: str | None = None,
) -> Response:
    return render(
        request,
        "conversations.html",
        user=user,
        status_code=422 if error else 200,
        filters=filters,
        rows=rows,
        page=page,
        previous_query=filters.query(page - 1) if page > 1 else None,
        next_query=filters.query(page + 1) if more and page < MAX_PAGE else None,
        statuses=list(ThreadStatus),
        channels=list(Channel),
        error=error,
    )


async def _rows(session: AsyncSession, found: Sequence[Thread]) -> list[dict[str, Any]]:
    """Each conversation with its student's name, its channel and who has it."""
    phones = [thread.phone for thread in found]
    names = await students.names_of(session, phones)
    on = await channels.channels_of(session, phones)
    staff = await _staff_emails(session)
    return [
        {
            "thread": thread,
            "name": names.get(thread.phone),
            "channel": on.get(thread.phone),
            "assignee": staff.get(thread.assigned_to) if thread.assigned_to else None,
        }
        for thread in found
    ]


async def _staff_emails(session: AsyncSession) -> dict[uuid.UUID, str]:
    return {account.id: account.email for account in await users.list_users(session)}


@router.get("/conversations/{thread_id}")
async def conversation_page(request: Request, session: DBSession, user: AnyStaff, thread_id: uuid.UUID) -> Response:
    page = await _thread_page(request, session, user, thread_id)
    # The page's live updates (/history) read the same conversation again: only opening it is recorded.
    phone = (await threads.get_thread(session, thread_id)).phone
    await audit.record(session, console_caller(request, user), Action.thread_read, phone=phone, target=str(thread_id))
    return page


@router.get("/conversations/{thread_id}/history")
async def conversation_history(request: Request, session: DBSession, user: AnyStaff, thread_id: uuid.UUID) -> Response:
    """The part of the page that follows the database: who has it, and the messages."""
    context = await _thread_context(request, session, user, thread_id)
    return render(request, "conversation_history.html", user=user, **context)


@router.get("/conversations/{thread_id}/events")
async def conversation_events(
    request: Request,
    session: DBSession,
    user: AnyStaff,
    thread_id: uuid.UUID,
    seen: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    await threads.get_thread(session, thread_id)
    return changes_stream(request, lambda polled: threads.thread_version(polled, thread_id), seen)


@router.get("/conversations/{thread_id}/attachments/{attachment_id}")
async def conversation_attachment(
    request: Request, session: DBSession, user: AnyStaff, thread_id: uuid.UUID, attachment_id: uuid.UUID
) -> Response:
    """A voice note, image or document the student sent, for the page's player, image or link."""
    attachment = await threads.get_attachment(session, thread_id, attachment_id)
    phone = (await threads.get_thread(session, thread_id)).phone
    caller = console_caller(request, user)
    await audit.record(session, caller, Action.attachment_download, phone=phone, target=str(attachment_id))
    assert attachment.content is not None
    filename = attachment.filename or f"{attachment.kind}-{attachment.id}"
    # As the API serves it: a download when opened, never a page the student's file could script.
    return Response(
        attachment.content,
        media_type=attachment.mime_type,
        headers={"content-disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
    )


@router.post("/conversations/{thread_id}/take")
async def take_conversation(request: Request, session: DBSession, user: AnyStaff, thread_id: uuid.UUID) -> Response:
    try:
        thread = await threads.take_thread(session, thread_id, user.id, get_state(request).clock())
    except BedelError as exc:
        return await _thread_page(request, session, user, thread_id, error=exc)
    caller = console_caller(request, user)
    await audit.record(session, caller, Action.thread_take, phone=thread.phone, target=str(thread_id))
    return see_other(f"{PAGE}/{thread_id}")


@router.post("/conversations/{thread_id}/reply")
async def reply(
    request: Request,
    session: DBSession,
    user: AnyStaff,
    background: BackgroundTasks,
    thread_id: uuid.UUID,
    text: Annotated[str, Form(max_length=MAX_QUESTION_CHARS)] = "",
) -> Response:
    """A person's reply, sent by the same service as the API's (window rule and fallback included)."""
    state = get_state(request)
    has_fallback = state.settings.reengage_fallback is not ReengageFallback.none
    try:
        written = text.strip()
        if not written or "\x00" in written:
            raise InvalidInput("write the reply first", field="text")
        await channels.send_staff_message(session, thread_id, written, state.clock(), has_fallback=has_fallback)
    except BedelError as exc:
        return await _thread_page(request, session, user, thread_id, error=exc, draft=text)
    phone = (await threads.get_thread(session, thread_id)).phone
    await audit.record(session, console_caller(request, user), Action.thread_reply, phone=phone, target=str(thread_id))
    background.add_task(state.jobs.wake)
    return see_other(f"{PAGE}/{thread_id}")


@router.post("/conversations/{thread_id}/release")
async def hand_back(request: Request, session: DBSession, user: AnyStaff, thread_id: uuid.UUID) -> Response:
    """The bot answers the student again."""
    try:
        thread = await threads.set_status(session, thread_id, ThreadStatus.active, get_state(request).clock())
    except BedelError as exc:
        return await _thread_page(request, session, user, thread_id, error=exc)
    detail = {"status": ThreadStatus.active}
    caller = console_caller(request, user)
    await audit.record(session, caller, Action.thread_handoff, phone=thread.phone, target=str(thread_id), detail=detail)
    return see_other(f"{PAGE}/{thread_id}")


async def _thread_page(
    request: Request,
    session: DBSession,
    user: StaffUser,
    thread_id: uuid.UUID,
    *,
    error: BedelError | None = None,
    draft: str = "",
) -> Response:
    # Read before the messages: on PostgreSQL each statement sees what was committed since the last,
    # so a version read after them could already count a change (a reply marked sent) they don't show,
    # and the page's stream would never report it. Read first, such a change is reported.
    version = await threads.thread_version(session, thread_id)
    context = await _thread_context(request, session, user, thread_id)
    words = strings(page_language(request))
    return render(
        request,
        "conversation.html",
        user=user,
        status_code=error.status if error else 200,
        here=f"{PAGE}/{thread_id}",
        error=words.get(f"conv_error_{error.code}", error.message) if error else None,
        draft=draft,
        version=version,
        **context,
    )


async def _thread_context(
    request: Request, session: AsyncSession, user: StaffUser, thread_id: uuid.UUID
) -> dict[str, Any]:
    state = get_state(request)
    thread = await threads.get_thread(session, thread_id)
    messages = await threads.list_messages(
        session, thread_id, after=max(0, thread.message_count - HISTORY), limit=HISTORY
    )
    answers = [message.id for message in messages if message.role == Role.assistant]
    now = state.clock()
    window = await channels.reply_window(session, thread.phone, now, state.settings.reengage_fallback)
    staff = await _staff_emails(session)
    return {
        "thread": thread,
        "messages": messages,
        "name": (await students.names_of(session, [thread.phone])).get(thread.phone),
        "verdicts": await feedback.verdicts_of(session, answers),
        "assignee": staff.get(thread.assigned_to) if thread.assigned_to else None,
        "mine": thread.assigned_to == user.id,
        "window": window,
        "left": window.open_until - now if window.open_until else None,
        "truncated": bool(messages) and messages[0].seq > 1,
    }
