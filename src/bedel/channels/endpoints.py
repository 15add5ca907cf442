"""Staff replies in a handed-off conversation, delivered over the student's channel."""

import uuid
from typing import Protocol, cast

from fastapi import APIRouter, BackgroundTasks, Request

from bedel.audit import service as audit
from bedel.audit.models import Action
from bedel.auth import StaffCaller, StaffOnly
from bedel.channels.receipts import Receipts
from bedel.channels.service import hand_over, send_staff_message
from bedel.chat.schemas import MessageOut, StaffMessageCreate, ThreadOut, ThreadUpdate
from bedel.chat.service import ChatService
from bedel.chat.threads import get_thread
from bedel.config import ReengageFallback
from bedel.db import utcnow
from bedel.dependencies import CoreState, DBSession, get_state

router = APIRouter(prefix="/threads", tags=["threads"], dependencies=[StaffOnly])


class ChannelsState(CoreState, Protocol):
    """What the channels' endpoints read from the app's state: the chat service tells the handoff notice,
    and the webhooks hand delivery receipts to `receipts`."""

    chat: ChatService
    receipts: Receipts


@router.patch("/{thread_id}", response_model=ThreadOut)
async def update_thread(
    thread_id: uuid.UUID,
    body: ThreadUpdate,
    request: Request,
    session: DBSession,
    background: BackgroundTasks,
    caller: StaffCaller,
) -> ThreadOut:
    """Hand the conversation to a person (`handoff`; the student is told over WhatsApp) or back to the bot."""
    state = cast(ChannelsState, get_state(request))
    notice = state.chat.handoff_notice()
    has_fallback = state.settings.reengage_fallback is not ReengageFallback.none
    thread = await hand_over(session, thread_id, body.status, notice, utcnow(), has_fallback=has_fallback)
    detail = {"status": body.status}
    await audit.record(session, caller, Action.thread_handoff, phone=thread.phone, target=str(thread_id), detail=detail)
    background.add_task(state.jobs.wake)
    return ThreadOut.model_validate(thread)


@router.post("/{thread_id}/messages", response_model=MessageOut, status_code=201)
async def post_staff_message(
    thread_id: uuid.UUID,
    body: StaffMessageCreate,
    request: Request,
    session: DBSession,
    background: BackgroundTasks,
    caller: StaffCaller,
) -> MessageOut:
    """Store a person's reply in the thread and send it over WhatsApp (past 24 h, as the configured fallback)."""
    state = get_state(request)
    has_fallback = state.settings.reengage_fallback is not ReengageFallback.none
    message = await send_staff_message(session, thread_id, body.text, utcnow(), has_fallback=has_fallback)
    thread = await get_thread(session, thread_id)
    await audit.record(session, caller, Action.thread_reply, phone=thread.phone, target=str(thread_id))
    background.add_task(state.jobs.wake)
    return MessageOut.model_validate(message)
