import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Protocol, cast
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from bedel.audit import service as audit
from bedel.audit.models import Action
from bedel.auth import CurrentCaller, StaffCaller, StaffOnly
from bedel.chat import threads
from bedel.chat.models import ThreadStatus
from bedel.chat.prompt import compile_instructions
from bedel.chat.schemas import (
    ChatAnswer,
    ChatRequest,
    MessageOut,
    MessagePage,
    Phone,
    ThreadList,
    ThreadOut,
)
from bedel.chat.service import ChatService
from bedel.config import ConfigError
from bedel.db import is_database_outage
from bedel.dependencies import CoreState, DBSession, get_state
from bedel.errors import BedelError, Forbidden, InvalidInput, UnsupportedMediaType
from bedel.exception_handlers import DATABASE_UNAVAILABLE
from bedel.keys.models import KeyRole
from bedel.paging import MAX_INT32, MAX_OFFSET

log = structlog.get_logger()
router = APIRouter(tags=["chat"])
threads_router = APIRouter(prefix="/threads", tags=["threads"], dependencies=[StaffOnly])


class ChatState(CoreState, Protocol):
    """What /chat reads from the app's state."""

    chat: ChatService


def _state(request: Request) -> ChatState:
    return cast(ChatState, get_state(request))


async def require_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType(f"send the body as application/json, not {content_type}")


@router.post(
    "/chat",
    response_model=ChatAnswer,
    dependencies=[Depends(require_json)],
    responses={200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE with stream=true"}},
)
async def chat(body: ChatRequest, request: Request, caller: CurrentCaller) -> Any:
    """Answer a student's question; `"stream": true` returns Server-Sent Events."""
    state = _state(request)
    options, template = None, None
    if body.assistant is not None:
        if caller.role != KeyRole.staff:
            raise Forbidden("only staff keys may override the assistant settings", field="assistant")
        overrides = body.assistant.model_dump(exclude={"instructions"})
        options = state.chat.options_with(**overrides)
        if body.assistant.instructions is not None:
            try:
                template = compile_instructions(body.assistant.instructions)
            except ConfigError as exc:
                raise InvalidInput(str(exc), field="assistant.instructions") from None
    await state.limiter.check_key(caller.key_id)
    await state.limiter.check_phone(body.phone)
    if not body.stream:
        answer = await state.chat.ask(body.phone, body.question, options, template)
        # Serialised once, as it is: FastAPI would dump the answer, validate the dump and dump it again.
        return Response(answer.model_dump_json(), media_type="application/json")
    events = state.chat.ask_stream(body.phone, body.question, options, template)
    return StreamingResponse(_sse(events), media_type="text/event-stream")


async def _sse(events: AsyncIterator[str | ChatAnswer]) -> AsyncIterator[str]:
    try:
        async for item in events:
            if isinstance(item, ChatAnswer):
                yield f"event: answer\ndata: {item.model_dump_json()}\n\n"
            else:
                yield f"event: delta\ndata: {json.dumps({'text': item}, ensure_ascii=False)}\n\n"
    except BedelError as exc:
        error = {"error": {"code": exc.code, "message": exc.message, "field": exc.field}}
        yield f"event: error\ndata: {json.dumps(error)}\n\n"
    except Exception as exc:
        # Headers are gone already: the stream itself must say it failed.
        if is_database_outage(exc):
            log.warning("database_unavailable", error=type(exc).__name__, path="/chat")
            code, message = "database_unavailable", DATABASE_UNAVAILABLE
        else:
            log.exception("stream_failed")
            code, message = "internal_error", "unexpected error; it has been logged"
        yield f"event: error\ndata: {json.dumps({'error': {'code': code, 'message': message, 'field': None}})}\n\n"


@threads_router.get("", response_model=ThreadList)
async def list_threads(
    session: DBSession,
    phone: Annotated[Phone | None, Query()] = None,
    status: ThreadStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> ThreadList:
    items = await threads.list_threads(session, phone=phone, status=status, limit=limit, offset=offset)
    return ThreadList(items=[ThreadOut.model_validate(thread) for thread in items])


@threads_router.get("/{thread_id}/messages", response_model=MessagePage)
async def list_messages(
    thread_id: uuid.UUID,
    session: DBSession,
    caller: StaffCaller,
    after: Annotated[int, Query(ge=0, le=MAX_INT32, description="Return messages with seq greater than this.")] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> MessagePage:
    items = await threads.list_messages(session, thread_id, after=after, limit=limit)
    thread = await threads.get_thread(session, thread_id)
    await audit.record(session, caller, Action.thread_read, phone=thread.phone, target=str(thread_id))
    next_after = items[-1].seq if len(items) == limit else None
    return MessagePage(items=[MessageOut.model_validate(m) for m in items], next_after=next_after)


@threads_router.get(
    "/{thread_id}/attachments/{attachment_id}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The file as the student sent it."}},
)
async def download_attachment(
    thread_id: uuid.UUID, attachment_id: uuid.UUID, session: DBSession, caller: StaffCaller
) -> Response:
    """A voice note, image or document a student sent (listed in the message's `attachments`)."""
    attachment = await threads.get_attachment(session, thread_id, attachment_id)
    thread = await threads.get_thread(session, thread_id)
    await audit.record(session, caller, Action.attachment_download, phone=thread.phone, target=str(attachment_id))
    assert attachment.content is not None
    filename = attachment.filename or f"{attachment.kind}-{attachment.id}"
    return Response(
        attachment.content,
        media_type=attachment.mime_type,
        # Always a download, never rendered: the type is whatever the student's phone said.
        headers={
            "content-disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            "x-content-type-options": "nosniff",
        },
    )


@threads_router.delete("/{thread_id}", status_code=204)
async def forget_thread(thread_id: uuid.UUID, session: DBSession, caller: StaffCaller) -> Response:
    phone = (await threads.get_thread(session, thread_id)).phone
    await threads.forget_thread(session, thread_id)
    await audit.record(session, caller, Action.thread_forget, phone=phone, target=str(thread_id))
    return Response(status_code=204)
