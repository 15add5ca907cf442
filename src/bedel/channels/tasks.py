"""The channel jobs: answer one inbound message (a burst of texts, a file, a tapped reply button), deliver one text."""

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bedel.campaigns.service import opt_out_request, set_subscription
from bedel.channels.bursts import Burst, find_burst, interrupted
from bedel.channels.buttons import answer_buttons, read_tap
from bedel.channels.delivery_errors import explain
from bedel.channels.media import describe, media_from, receive_media, reply_for
from bedel.channels.models import Channel
from bedel.channels.ports import Button, EmailSender, MessageSender, SendFailed
from bedel.channels.repository import ContactRepository
from bedel.channels.schemas import Delivery, InboundMedia, MediaKind
from bedel.channels.service import ANSWER_JOB, DELIVER_JOB, enqueue_delivery, hand_over, window_open
from bedel.chat.models import DeliveryPath, Role, ThreadStatus
from bedel.chat.schemas import AttachmentCreate
from bedel.chat.service import AskedQuestion, ChatService
from bedel.chat.threads import append_message, belongs_to, has_message_from, is_handed_off, mark_failed, mark_sent
from bedel.config import ReengageFallback
from bedel.db import Clock
from bedel.errors import UpstreamUnavailable
from bedel.feedback.service import record_feedback
from bedel.identities.service import current_key, is_anonymous
from bedel.identities.verification import IdentityVerifier
from bedel.jobs.repository import JobRepository
from bedel.jobs.runner import Handler, JobContext, JobFailed, Postpone, RetryLater
from bedel.llm.ports import Transcriber
from bedel.phones import mask_phone
from bedel.students.repository import StudentRepository

log = structlog.get_logger()

# How often an answer being generated looks for a newer message of its burst.
INTERRUPT_POLL_S = 0.25

_FALLBACK_PATHS = {
    ReengageFallback.template: DeliveryPath.template,
    ReengageFallback.sms: DeliveryPath.sms,
    ReengageFallback.email: DeliveryPath.email,
    ReengageFallback.none: None,
}


class ChannelTasks:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        chat: ChatService,
        senders: Mapping[Channel, MessageSender],
        verifier: IdentityVerifier,
        *,
        transcriber: Transcriber | None,
        media_max_bytes: int,
        burst_window: timedelta,
        clock: Clock,
        fallback: ReengageFallback = ReengageFallback.none,
        sms: MessageSender | None = None,
        email: EmailSender | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._chat = chat
        self._senders = senders
        self._verifier = verifier
        self._transcriber = transcriber
        self._media_max_bytes = media_max_bytes
        self._burst_window = burst_window
        self._clock = clock
        self._fallback = fallback
        self._sms = sms
        self._email = email

    def handlers(self) -> dict[str, Handler]:
        return {ANSWER_JOB: self.answer, DELIVER_JOB: self.deliver}

    async def answer(self, job: JobContext) -> None:
        """Answer through the same chat flow as `POST /chat`, unless a person has the conversation.

        "BAJA" / "ALTA" and a tapped reply button are handled at once, each on its own. Texts
        written in a row are answered together (see `bursts.py`): the first one's job answers
        them all and finishes the others' jobs in the transaction that queues the reply. A voice
        note is transcribed and answered like text; a file is kept for staff.
        """
        text, button = job.payload["text"], job.payload.get("button")
        channel = Channel(job.payload["channel"])
        source_id = _source_id(job.payload)
        media = media_from(job.payload.get("media"))
        subscription = opt_out_request(text)
        if subscription is not None:
            await self._change_subscription(job, subscription)
            return
        async with self._sessionmaker() as session, session.begin():
            phone = await current_key(session, job.payload["phone"], job.payload["address"])
            handed_off = not button and await is_handed_off(session, phone)
        if handed_off:
            # The person on staff reads it in the thread; the bot stays silent.
            if media is not None:
                await self._keep(phone, source_id, describe(media), await self._receive(channel, media))
            elif text is not None:
                await self._keep(phone, source_id, text, None)
            return
        delivery = Delivery(channel, job.payload["address"], phone, "")
        if button:
            await self._tapped(delivery, button, source_id)
            return
        covered: list[int] = []
        if stored := await self._chat.stored_answer(source_id):
            # A re-run after a crash delivers the answer already stored instead of asking again.
            delivery = replace(delivery, text=stored[0], message_id=stored[1])
            if text is not None:
                covered = await self._covered(await self._find_burst(job), stored[1])
        elif text is None:
            delivery = await self._answer_media(delivery, source_id, media)
        else:
            # The time is read before the burst: a text that comes in meanwhile is left to the watch below.
            now = self._clock()
            burst = await self._find_burst(job)
            quiet_at = burst.quiet_at(self._burst_window)
            if now < quiet_at:
                raise Postpone(quiet_at)
            questions = [AskedQuestion(payload["text"], _source_id(payload)) for _, payload in burst.jobs]
            delivery = await self._reply(delivery, questions, burst)
            covered = burst.followers
        async with self._sessionmaker() as session, session.begin():
            await enqueue_delivery(session, delivery, once_for=source_id)
            await JobRepository.from_session(session, self._clock).finish_queued(covered)
            if is_anonymous(phone) and (invitation := await self._verifier.invitation(session, phone, self._clock())):
                invitation_id = await append_message(session, phone, Role.assistant, invitation)
                invited = replace(delivery, text=invitation, message_id=invitation_id, buttons=(), footer="")
                await enqueue_delivery(session, invited, once_for=f"{source_id}:invitation")

    async def _reply(self, delivery: Delivery, questions: list[AskedQuestion], burst: Burst | None) -> Delivery:
        """A sender known only by a business-scoped id may be verifying who they are; else the chat flow."""
        if is_anonymous(delivery.phone):
            async with self._sessionmaker() as session, session.begin():
                step = await self._verifier.step(session, delivery.phone, questions, self._clock())
            if step is not None:
                return replace(delivery, text=step[0], message_id=step[1])
        if burst is None or not self._burst_window:
            return await self._ask(delivery, questions)
        return await self._ask_unless_interrupted(delivery, questions, burst)

    async def _change_subscription(self, job: JobContext, subscribe: bool) -> None:
        """ "BAJA" / "STOP" (or "ALTA" / "START"): no bot answer, the change confirmed in the thread."""
        channel = Channel(job.payload["channel"])
        source_id = _source_id(job.payload)
        async with self._sessionmaker() as session, session.begin():
            phone = await current_key(session, job.payload["phone"], job.payload["address"])
            await set_subscription(session, phone, subscribe)
            await append_message(session, phone, Role.user, job.payload["text"])
            reply = self._chat.texts.subscribed if subscribe else self._chat.texts.unsubscribed
            message_id = await append_message(session, phone, Role.assistant, reply)
            delivery = Delivery(channel, job.payload["address"], phone, reply, message_id)
            await enqueue_delivery(session, delivery, once_for=source_id)
        log.info("campaign_subscription_changed", phone=mask_phone(phone), subscribed=subscribe)

    async def _answer_media(self, delivery: Delivery, source_id: str, media: InboundMedia | None) -> Delivery:
        """A voice note that could be transcribed is a question; any other file is kept, with a polite reply."""
        if media is None:
            return replace(delivery, text=self._chat.texts.only_text)
        attachment = await self._receive(delivery.channel, media)
        if media.kind == MediaKind.audio and attachment.content is not None:
            transcript, note = await self._transcribe(delivery.phone, attachment)
            if transcript:
                question = AskedQuestion(transcript, source_id, replace(attachment, transcript=transcript))
                return await self._reply(delivery, [question], None)
            attachment = replace(attachment, note=note)
        await self._keep(delivery.phone, source_id, describe(media), attachment)
        return replace(delivery, text=reply_for(attachment, self._chat.texts))

    async def _receive(self, channel: Channel, media: InboundMedia) -> AttachmentCreate:
        return await receive_media(self._senders.get(channel), media, self._media_max_bytes)

    async def _transcribe(self, phone: str, attachment: AttachmentCreate) -> tuple[str, str | None]:
        """The transcript, or "" and why there is none."""
        if self._transcriber is None:
            return "", "not transcribed: no transcription model is configured (BEDEL_TRANSCRIPTION_MODEL)"
        assert attachment.content is not None
        try:
            transcript = await self._transcriber.transcribe(attachment.content, attachment.mime_type)
        except UpstreamUnavailable as exc:
            log.warning("voice_note_not_transcribed", phone=mask_phone(phone))
            return "", f"not transcribed: {exc.message}"
        return transcript, None if transcript else "not transcribed: the transcript was empty"

    async def _keep(self, phone: str, source_id: str, content: str, attachment: AttachmentCreate | None) -> None:
        """Store a message the bot does not answer, once, even when its job runs again."""
        async with self._sessionmaker() as session, session.begin():
            if not await has_message_from(session, source_id):
                await append_message(session, phone, Role.user, content, source_id=source_id, attachment=attachment)

    async def _find_burst(self, job: JobContext) -> Burst:
        if not self._burst_window:
            return Burst([(job.id, job.payload)])
        async with self._sessionmaker() as session:
            return await find_burst(session, job.id, job.payload)

    async def _covered(self, burst: Burst, answer_id: uuid.UUID) -> list[int]:
        """The followers whose questions the stored answer already covers."""
        covered = []
        for job_id, payload in burst.jobs[1:]:
            stored = await self._chat.stored_answer(_source_id(payload))
            if stored is None or stored[1] != answer_id:
                break
            covered.append(job_id)
        return covered

    async def _ask_unless_interrupted(
        self, delivery: Delivery, questions: list[AskedQuestion], burst: Burst
    ) -> Delivery:
        """Ask, abandoning the generation when a newer text of the burst arrives before its answer is stored.

        The abandoned turn stores no answer; its questions stay stored, and the job runs again
        (postponed to now) to answer them together with the newer one.
        """
        asking = asyncio.create_task(self._ask(delivery, questions))
        try:
            while not (await asyncio.wait({asking}, timeout=INTERRUPT_POLL_S))[0]:
                async with self._sessionmaker() as session:
                    newer = await interrupted(session, burst)
                # cancel() is False when the answer is already done: then it is sent.
                if newer and asking.cancel():
                    await asyncio.gather(asking, return_exceptions=True)
                    log.info("channel_answer_restarted", phone=mask_phone(delivery.phone))
                    raise Postpone(self._clock())
            return asking.result()
        finally:
            asking.cancel()

    async def _ask(self, delivery: Delivery, questions: list[AskedQuestion]) -> Delivery:
        # Only Meta's API sends reply buttons: over Twilio a handoff is taken at once, and no feedback is asked.
        confirm = delivery.channel == Channel.whatsapp
        try:
            answer = await self._chat.ask_together(delivery.phone, questions, confirm_handoff=confirm)
        except UpstreamUnavailable:
            # Like /chat's 503: the question is stored, and the student is asked to write again.
            log.warning("channel_answer_unavailable", phone=mask_phone(delivery.phone))
            return replace(delivery, text=self._chat.texts.unavailable)
        answered = replace(delivery, text=answer.answer, message_id=answer.message_id)
        if not confirm:
            return answered
        buttons, footer = answer_buttons(
            answer.thread_id, answer.message_id, self._chat.texts, handoff_offered=answer.handoff
        )
        return replace(answered, buttons=buttons, footer=footer)

    async def _tapped(self, to: Delivery, button: str, source_id: str) -> None:
        """A reply button: feedback on an answer, or the student's yes or no to a person taking over."""
        phone = to.phone
        tap = read_tap(button)
        if tap is None:
            log.warning("channel_unknown_button", phone=mask_phone(phone))
            return
        reply = None
        async with self._sessionmaker() as session, session.begin():
            if tap.kind == "feedback":
                recorded = await record_feedback(session, phone, tap.target, helpful=tap.yes)
                reply = self._chat.texts.not_helpful if recorded and not tap.yes else None
            elif not await belongs_to(session, tap.target, phone):
                log.warning("channel_button_for_another_thread", phone=mask_phone(phone))
            elif tap.yes:
                notice = self._chat.handoff_notice()
                await hand_over(session, tap.target, ThreadStatus.handoff, notice, self._clock(), has_fallback=False)
            else:
                reply = self._chat.texts.handoff_declined
            if reply is not None:
                await enqueue_delivery(session, replace(to, text=reply), once_for=source_id)

    async def deliver(self, job: JobContext) -> None:
        """Send one part: free-form within the student's 24-hour window, else the configured fallback."""
        payload = job.payload
        message_id = uuid.UUID(payload["message_id"]) if payload["message_id"] else None
        path = await self._path(payload["phone"])
        try:
            if path is None:
                # Never hand the vendor a message it would drop, and never report it as sent.
                raise SendFailed("the 24-hour window closed, no fallback set", temporary=False, code="window_closed")
            vendor_message_id = await self._send(path, payload)
        except SendFailed as exc:
            if exc.temporary and not job.last_attempt:
                raise RetryLater(str(exc), exc.retry_after_s) from None
            await self._record_failure(message_id, exc, path)
            raise JobFailed(str(exc)) from None
        if message_id is not None:
            async with self._sessionmaker() as session, session.begin():
                await mark_sent(session, message_id, vendor_message_id, path)

    async def _path(self, phone: str) -> DeliveryPath | None:
        """Free-form while the window is open; past it the fallback, or None when there is none."""
        async with self._sessionmaker() as session:
            contact = await ContactRepository.from_session(session).get(phone)
        if contact is None or window_open(contact.last_inbound_at, self._clock()):
            return DeliveryPath.free_form
        path = _FALLBACK_PATHS[self._fallback]
        log.info("channel_window_closed", phone=mask_phone(phone), path=path)
        return path

    async def _send(self, path: DeliveryPath, payload: dict[str, Any]) -> str:
        channel, address, text = Channel(payload["channel"]), payload["address"], payload["text"]
        if path is DeliveryPath.sms:
            assert self._sms is not None
            return await self._sms.send_text(payload["phone"], text)
        if path is DeliveryPath.email:
            assert self._email is not None
            subject = self._chat.texts.email_subject.format(institution=self._chat.options.institution_name)
            return await self._email.send_email(await self._email_address(payload["phone"]), subject, text)
        sender = self._senders.get(channel)
        if sender is None:
            raise SendFailed(f"the {channel} channel is off", temporary=False)
        if path is DeliveryPath.template:
            return await sender.send_reengagement(address, text)
        if buttons := payload.get("buttons"):
            return await sender.send_buttons(address, text, payload["footer"], [Button(*b) for b in buttons])
        return await sender.send_text(address, text)

    async def _email_address(self, phone: str) -> str:
        async with self._sessionmaker() as session:
            student = await StudentRepository.from_session(session).get_record(phone)
        if student is None or not student.email:
            raise SendFailed("the student's record has no email", temporary=False, code="no_email")
        return student.email

    async def _record_failure(self, message_id: uuid.UUID | None, exc: SendFailed, path: DeliveryPath | None) -> None:
        if message_id is None:
            return
        async with self._sessionmaker() as session, session.begin():
            error = explain(exc.code, str(exc))
            await mark_failed(session, message_id, exc.code, error, path)


def _source_id(payload: dict[str, Any]) -> str:
    return f"{payload['channel']}:{payload['external_id']}"
