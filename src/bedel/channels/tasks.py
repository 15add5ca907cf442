"""The channel jobs: answer one inbound message, deliver one outbound text."""

import uuid
from collections.abc import Mapping
from dataclasses import replace

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bedel.campaigns.service import opt_out_request, set_subscription
from bedel.channels.models import Channel
from bedel.channels.ports import MessageSender, SendFailed
from bedel.channels.schemas import Delivery
from bedel.channels.service import ANSWER_JOB, DELIVER_JOB, enqueue_delivery
from bedel.chat.models import DeliveryStatus, Role
from bedel.chat.repository import ThreadRepository
from bedel.chat.service import ChatService
from bedel.chat.threads import append_message, is_handed_off
from bedel.db import utcnow
from bedel.errors import UpstreamUnavailable
from bedel.identities.service import current_key, is_anonymous
from bedel.identities.verification import IdentityVerifier
from bedel.jobs.runner import Handler, JobContext, JobFailed, RetryLater
from bedel.phones import mask_phone

log = structlog.get_logger()

ONLY_TEXT_REPLY = "Por ahora solo puedo leer mensajes de texto. ¿Me escribes tu pregunta, por favor?"
UNSUBSCRIBED_REPLY = (
    "Listo, ya no recibirás avisos masivos. Puedes seguir escribiéndome tus dudas. "
    "Si quieres volver a recibirlos, escribe ALTA."
)
SUBSCRIBED_REPLY = "Listo, volverás a recibir los avisos de la institución. Para dejar de recibirlos, escribe BAJA."
UNAVAILABLE_REPLY = "En este momento no puedo responder. Escríbeme de nuevo en unos minutos, por favor."


class ChannelTasks:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        chat: ChatService,
        senders: Mapping[Channel, MessageSender],
        verifier: IdentityVerifier,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._chat = chat
        self._senders = senders
        self._verifier = verifier

    def handlers(self) -> dict[str, Handler]:
        return {ANSWER_JOB: self.answer, DELIVER_JOB: self.deliver}

    async def answer(self, job: JobContext) -> None:
        """Answer through the same chat flow as `POST /chat`, unless a person has the conversation."""
        text = job.payload["text"]
        subscription = opt_out_request(text)
        if subscription is not None:
            await self._change_subscription(job, subscription)
            return
        async with self._sessionmaker() as session, session.begin():
            phone = await current_key(session, job.payload["phone"], job.payload["address"])
            if await is_handed_off(session, phone):
                # The person on staff reads it in the thread; the bot stays silent.
                if text is not None:
                    await append_message(session, phone, Role.user, text)
                return
        channel = Channel(job.payload["channel"])
        source_id = f"{channel}:{job.payload['external_id']}"
        if text is None:
            reply, message_id = ONLY_TEXT_REPLY, None
        else:
            # A re-run after a crash delivers the answer already stored instead of asking again.
            stored = await self._chat.stored_answer(source_id)
            reply, message_id = stored or await self._reply(phone, text, source_id)
        async with self._sessionmaker() as session, session.begin():
            delivery = Delivery(channel, job.payload["address"], phone, reply, message_id)
            await enqueue_delivery(session, delivery, once_for=source_id)
            if is_anonymous(phone) and (invitation := await self._verifier.invitation(session, phone, utcnow())):
                invitation_id = await append_message(session, phone, Role.assistant, invitation)
                invited = replace(delivery, text=invitation, message_id=invitation_id)
                await enqueue_delivery(session, invited, once_for=f"{source_id}:invitation")

    async def _reply(self, phone: str, text: str, source_id: str) -> tuple[str, uuid.UUID | None]:
        """A sender known only by a business-scoped id may be verifying who they are."""
        if is_anonymous(phone):
            async with self._sessionmaker() as session, session.begin():
                step = await self._verifier.step(session, phone, text, source_id, utcnow())
            if step is not None:
                return step
        return await self._ask(phone, text, source_id)

    async def _change_subscription(self, job: JobContext, subscribe: bool) -> None:
        """ "BAJA" / "STOP" (or "ALTA" / "START"): no bot answer, the change confirmed in the thread."""
        channel = Channel(job.payload["channel"])
        source_id = f"{channel}:{job.payload['external_id']}"
        async with self._sessionmaker() as session, session.begin():
            phone = await current_key(session, job.payload["phone"], job.payload["address"])
            await set_subscription(session, phone, subscribe)
            await append_message(session, phone, Role.user, job.payload["text"])
            reply = SUBSCRIBED_REPLY if subscribe else UNSUBSCRIBED_REPLY
            message_id = await append_message(session, phone, Role.assistant, reply)
            delivery = Delivery(channel, job.payload["address"], phone, reply, message_id)
            await enqueue_delivery(session, delivery, once_for=source_id)
        log.info("campaign_subscription_changed", phone=mask_phone(phone), subscribed=subscribe)

    async def _ask(self, phone: str, text: str, source_id: str) -> tuple[str, uuid.UUID | None]:
        try:
            answer = await self._chat.ask(phone, text, source_id=source_id)
        except UpstreamUnavailable:
            # Like /chat's 503: the question is stored, and the student is asked to write again.
            log.warning("channel_answer_unavailable", phone=mask_phone(phone))
            return UNAVAILABLE_REPLY, None
        return answer.answer, answer.message_id

    async def deliver(self, job: JobContext) -> None:
        payload = job.payload
        channel = Channel(payload["channel"])
        message_id = uuid.UUID(payload["message_id"]) if payload["message_id"] else None
        sender = self._senders.get(channel)
        try:
            if sender is None:
                raise SendFailed(f"the {channel} channel is off", temporary=False)
            await sender.send_text(payload["address"], payload["text"])
        except SendFailed as exc:
            if exc.temporary and not job.last_attempt:
                raise RetryLater(str(exc), exc.retry_after_s) from None
            await self._record(message_id, DeliveryStatus.failed, str(exc))
            raise JobFailed(str(exc)) from None
        await self._record(message_id, DeliveryStatus.sent)

    async def _record(self, message_id: uuid.UUID | None, status: DeliveryStatus, error: str | None = None) -> None:
        if message_id is None:
            return
        async with self._sessionmaker() as session, session.begin():
            await ThreadRepository.from_session(session).set_delivery(message_id, status, error)
