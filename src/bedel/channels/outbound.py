"""The deliver job: one part of a reply sent, free-form within the student's 24-hour window, else by the fallback."""

from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bedel.channels.delivery_errors import explain
from bedel.channels.jobs import DeliverJob
from bedel.channels.models import Channel
from bedel.channels.ports import EmailSender, MessageSender, SendFailed
from bedel.channels.repository import ContactRepository
from bedel.channels.schemas import Delivery
from bedel.channels.service import window_open
from bedel.chat.models import DeliveryPath
from bedel.chat.threads import mark_failed, mark_sent
from bedel.config import ReengageFallback
from bedel.db import Clock
from bedel.jobs.runner import JobContext, JobFailed, RetryLater
from bedel.phones import mask_phone
from bedel.students.repository import StudentRepository

log = structlog.get_logger()

_FALLBACK_PATHS = {
    ReengageFallback.template: DeliveryPath.template,
    ReengageFallback.sms: DeliveryPath.sms,
    ReengageFallback.email: DeliveryPath.email,
    ReengageFallback.none: None,
}


@dataclass(frozen=True)
class Fallback:
    """How a message reaches a student whose 24-hour window closed (decision 0012), and what it is sent with."""

    kind: ReengageFallback = ReengageFallback.none
    sms: MessageSender | None = None
    email: EmailSender | None = None
    email_subject: str = ""


class Deliverer:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        senders: Mapping[Channel, MessageSender],
        fallback: Fallback,
        *,
        clock: Clock,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._senders = senders
        self._fallback = fallback
        self._clock = clock

    async def deliver(self, context: JobContext) -> None:
        """Send one part: free-form within the student's 24-hour window, else the configured fallback."""
        part = DeliverJob.from_payload(context.payload).part
        path = await self._path(part.phone)
        try:
            if path is None:
                # Never hand the vendor a message it would drop, and never report it as sent.
                raise SendFailed("the 24-hour window closed, no fallback set", temporary=False, code="window_closed")
            vendor_message_id = await self._send(path, part)
        except SendFailed as exc:
            if exc.temporary and not context.last_attempt:
                raise RetryLater(str(exc), exc.retry_after_s) from None
            await self._record_failure(part, exc, path)
            raise JobFailed(str(exc)) from None
        if part.message_id is not None:
            async with self._sessionmaker() as session, session.begin():
                await mark_sent(session, part.message_id, vendor_message_id, path)

    async def _path(self, phone: str) -> DeliveryPath | None:
        """Free-form while the window is open; past it the fallback, or None when there is none."""
        async with self._sessionmaker() as session:
            contact = await ContactRepository.from_session(session).get(phone)
        if contact is None or window_open(contact.last_inbound_at, self._clock()):
            return DeliveryPath.free_form
        path = _FALLBACK_PATHS[self._fallback.kind]
        log.info("channel_window_closed", phone=mask_phone(phone), path=path)
        return path

    async def _send(self, path: DeliveryPath, part: Delivery) -> str:
        if path is DeliveryPath.sms:
            assert self._fallback.sms is not None
            return await self._fallback.sms.send_text(part.phone, part.text)
        if path is DeliveryPath.email:
            assert self._fallback.email is not None
            address = await self._email_address(part.phone)
            return await self._fallback.email.send_email(address, self._fallback.email_subject, part.text)
        sender = self._senders.get(part.channel)
        if sender is None:
            raise SendFailed(f"the {part.channel} channel is off", temporary=False)
        if path is DeliveryPath.template:
            return await sender.send_reengagement(part.address, part.text)
        if part.buttons:
            return await sender.send_buttons(part.address, part.text, part.footer, list(part.buttons))
        return await sender.send_text(part.address, part.text)

    async def _email_address(self, phone: str) -> str:
        async with self._sessionmaker() as session:
            student = await StudentRepository.from_session(session).get_record(phone)
        if student is None or not student.email:
            raise SendFailed("the student's record has no email", temporary=False, code="no_email")
        return student.email

    async def _record_failure(self, part: Delivery, exc: SendFailed, path: DeliveryPath | None) -> None:
        if part.message_id is None:
            return
        async with self._sessionmaker() as session, session.begin():
            error = explain(exc.code, str(exc))
            await mark_failed(session, part.message_id, exc.code, error, path)
