"""Channels: take each vendor message once, answer it through the chat flow, deliver replies in order.

Business rules: a message is ledgered (a job keyed by the vendor's message id) in
the webhook's own transaction, so a redelivery adds nothing and a crash loses
nothing; one phone's messages are answered one after another in arrival order,
and its replies are sent in the order they were written; a handed-off
conversation gets no bot answers. Free-form messages reach a student only within
24 hours of their last message; past it the deliver job sends the configured
fallback (a template or an SMS) instead, and with no fallback a person's reply is
refused up front (decision 0012).
"""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.channels.jobs import AnswerJob, DeliverJob
from bedel.channels.models import MAX_TEXT_LENGTH, Channel
from bedel.channels.repository import ContactRepository
from bedel.channels.schemas import Delivery, Inbound
from bedel.channels.text import split_message
from bedel.chat.models import Message, Role, Thread, ThreadStatus
from bedel.chat.threads import append_message, get_message, get_thread, mark_pending, set_status
from bedel.config import ReengageFallback
from bedel.db import as_utc
from bedel.errors import Conflict, TemplateRequired
from bedel.identities.service import current_key, identify
from bedel.jobs.repository import JobRepository
from bedel.phones import mask_phone

SESSION_WINDOW = timedelta(hours=24)
# Meta's limit for the body of a reply-buttons message.
BUTTONS_TEXT_LIMIT = 1024


def window_open(last_inbound_at: datetime, now: datetime) -> bool:
    """Whether the student wrote within the last 24 hours, so a free-form message reaches them."""
    return now - as_utc(last_inbound_at) <= SESSION_WINDOW


@dataclass(frozen=True)
class ReplyWindow:
    """Whether and how a person's reply would reach the student now."""

    channel: Channel | None  # None: the student never wrote over a channel, so no reply can be sent
    # Until when a free-form reply reaches them; None once the window has closed.
    open_until: datetime | None
    # What a reply becomes past the window: "template", "sms", "email"; None when nothing can carry it.
    fallback: ReengageFallback

    @property
    def can_send(self) -> bool:
        return self.channel is not None and (self.open_until is not None or self.fallback is not ReengageFallback.none)


async def reply_window(session: AsyncSession, phone: str, now: datetime, fallback: ReengageFallback) -> ReplyWindow:
    """The rule `send_staff_message` applies, told ahead: open for how long, or what a reply would become."""
    contact = await ContactRepository.from_session(session).get(phone)
    if contact is None:
        return ReplyWindow(None, None, fallback)
    closes = as_utc(contact.last_inbound_at) + SESSION_WINDOW
    return ReplyWindow(contact.channel, closes if window_open(contact.last_inbound_at, now) else None, fallback)


async def accept_inbound(session: AsyncSession, messages: Iterable[Inbound], received_at: datetime) -> int:
    """Ledger each message not seen before, as its answer job; return how many were new.

    One insert per message and nothing else, so the vendor is acknowledged at once: the
    sender's identifiers and contact are recorded by the job (`take_in`). `received_at` is
    when the webhook took them: bursts are measured by it (see `bursts.py`).
    """
    jobs = JobRepository.from_session(session)
    accepted = 0
    for message in messages:
        job = AnswerJob.of(message, received_at)
        accepted += await jobs.enqueue(job.kind, job.to_payload(), key=job.key, dedupe_key=job.source_id)
    return accepted


async def take_in(session: AsyncSession, job: AnswerJob) -> str:
    """Record who sent a ledgered message and where from; return the conversation key it is answered under.

    Every identifier the message carried is linked to its phone, and the contact remembers the
    channel for replies and the 24-hour window. Running it again changes nothing. A business-scoped
    id verified, or linked to a phone, since the message came is answered under that phone.
    """
    if job.sent_at is None or job.identities is None:
        # Ledgered by an older release, whose webhook recorded all this.
        return await current_key(session, job.phone, job.address)
    phone = await identify(session, job.phone, job.identities)
    await ContactRepository.from_session(session).record_inbound(phone, job.channel, job.address, job.sent_at)
    return phone


async def enqueue_delivery(
    session: AsyncSession, delivery: Delivery, *, once_for: str | None = None, delay: timedelta = timedelta(0)
) -> None:
    """Queue a text for sending, split to the channel's length; one phone's parts leave in order.

    With `once_for` (the inbound message being answered), queuing the reply again adds nothing.
    Buttons go under the last part; when it is too long to carry them, their question follows alone with them.
    """
    jobs = JobRepository.from_session(session)
    parts = [(part, "") for part in split_message(delivery.text, MAX_TEXT_LENGTH[delivery.channel])]
    if delivery.buttons and parts:
        last, _ = parts[-1]
        parts[-1:] = (
            [(last, delivery.footer)] if len(last) <= BUTTONS_TEXT_LIMIT else [(last, ""), (delivery.footer, "")]
        )
    for number, (text, footer) in enumerate(parts):
        buttons = delivery.buttons if number == len(parts) - 1 else ()
        job = DeliverJob(replace(delivery, text=text, footer=footer, buttons=buttons))
        dedupe_key = f"reply:{once_for}:{number}" if once_for else None
        await jobs.enqueue(job.kind, job.to_payload(), key=job.key, dedupe_key=dedupe_key, delay=delay)
    if delivery.message_id is not None:
        await mark_pending(session, delivery.message_id)


async def send_staff_message(
    session: AsyncSession, thread_id: uuid.UUID, text: str, now: datetime, *, has_fallback: bool
) -> Message:
    """A person's reply: stored in the thread, then delivered over the channel the student last used.

    `has_fallback`: a template or SMS is configured for a closed window; without one such a reply is refused.
    """
    thread = await get_thread(session, thread_id)
    contact = await ContactRepository.from_session(session).get(thread.phone)
    if contact is None:
        raise Conflict(
            f"{mask_phone(thread.phone)} has never written over WhatsApp, so there is no channel to reply on"
        )
    if not has_fallback and not window_open(contact.last_inbound_at, now):
        raise TemplateRequired(
            "the student's last message is over 24 hours old: WhatsApp only accepts a template message now, "
            "and BEDEL_REENGAGE_FALLBACK is none",
            field="text",
        )
    message_id = await append_message(session, thread.phone, Role.staff, text)
    await enqueue_delivery(session, Delivery(contact.channel, contact.address, thread.phone, text, message_id))
    return await get_message(session, message_id)


async def hand_over(
    session: AsyncSession,
    thread_id: uuid.UUID,
    status: ThreadStatus,
    notice: str,
    now: datetime,
    *,
    has_fallback: bool,
) -> Thread:
    """Hand a conversation to a person or back to the bot.

    When a person takes it over, the student is told so over the channel they last
    wrote from, if its 24-hour window is still open or a fallback can reach them;
    the notice stays in the thread.
    """
    thread = await get_thread(session, thread_id)
    taken_over = status == ThreadStatus.handoff and thread.status != ThreadStatus.handoff
    await set_status(session, thread_id, status, now)
    contact = await ContactRepository.from_session(session).get(thread.phone)
    reachable = contact is not None and (has_fallback or window_open(contact.last_inbound_at, now))
    if taken_over and contact is not None and reachable:
        message_id = await append_message(session, thread.phone, Role.assistant, notice)
        await enqueue_delivery(session, Delivery(contact.channel, contact.address, thread.phone, notice, message_id))
    return thread


def phones_on_channel(channel: Channel) -> Select[str]:
    """The phones whose latest message came over `channel`, as a subquery for a conversation search."""
    return ContactRepository.phones_on(channel)


async def channels_of(session: AsyncSession, phones: Sequence[str]) -> dict[str, Channel]:
    """The channel each of these phones last wrote from."""
    return await ContactRepository.from_session(session).channels_of(phones)
