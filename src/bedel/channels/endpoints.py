"""Staff replies in a handed-off conversation, delivered over the student's channel."""

import uuid

from fastapi import APIRouter, BackgroundTasks, Request

from bedel.auth import StaffOnly
from bedel.channels.service import hand_over, send_staff_message
from bedel.chat.schemas import MessageOut, StaffMessageCreate, ThreadOut, ThreadUpdate
from bedel.chat.service import handoff_notice
from bedel.db import utcnow
from bedel.state import DBSession, get_state

router = APIRouter(prefix="/threads", tags=["threads"], dependencies=[StaffOnly])


@router.patch("/{thread_id}", response_model=ThreadOut)
async def update_thread(
    thread_id: uuid.UUID, body: ThreadUpdate, request: Request, session: DBSession, background: BackgroundTasks
) -> ThreadOut:
    """Hand the conversation to a person (`handoff`; the student is told over WhatsApp) or back to the bot."""
    state = get_state(request)
    notice = handoff_notice(state.settings.contact)
    thread = await hand_over(session, thread_id, body.status, notice, utcnow())
    background.add_task(state.jobs.wake)
    return ThreadOut.model_validate(thread)


@router.post("/{thread_id}/messages", response_model=MessageOut, status_code=201)
async def post_staff_message(
    thread_id: uuid.UUID, body: StaffMessageCreate, request: Request, session: DBSession, background: BackgroundTasks
) -> MessageOut:
    """Store a person's reply in the thread and send it over WhatsApp (within 24 h of the student's last message)."""
    message = await send_staff_message(session, thread_id, body.text, utcnow())
    background.add_task(get_state(request).jobs.wake)
    return MessageOut.model_validate(message)
