"""The answer job: one inbound message (a burst of texts, a voice note, a file, a tapped reply button) answered."""

from dataclasses import replace

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bedel.channels.asking import Asker
from bedel.channels.buttons import read_tap
from bedel.channels.jobs import AnswerJob, QueuedAnswer
from bedel.channels.media import MediaInbox, describe, reply_for
from bedel.channels.repository import ContactRepository
from bedel.channels.schemas import Delivery, InboundMedia, MediaKind
from bedel.channels.service import enqueue_delivery, hand_over, take_in
from bedel.chat.models import Role, ThreadStatus
from bedel.chat.schemas import AttachmentCreate
from bedel.chat.service import AskedQuestion, ChatService
from bedel.chat.threads import append_message, belongs_to, has_message_from, is_handed_off
from bedel.consent.service import set_subscription, subscription_request
from bedel.db import Clock
from bedel.feedback.service import record_feedback
from bedel.jobs.repository import JobRepository
from bedel.jobs.runner import JobContext
from bedel.phones import mask_phone

log = structlog.get_logger()


class InboundAnswers:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        chat: ChatService,
        asker: Asker,
        media: MediaInbox,
        *,
        clock: Clock,
        privacy_notice: str | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._chat = chat
        self._asker = asker
        self._media = media
        self._clock = clock
        self._privacy_notice = privacy_notice

    async def answer(self, context: JobContext) -> None:
        """Answer through the same chat flow as `POST /chat`, unless a person has the conversation.

        "BAJA" / "ALTA" and a tapped reply button are handled at once, each on its own. Texts
        written in a row are answered together (see `bursts.py`): the first one's job answers
        them all and finishes the others' jobs in the transaction that queues the reply. A voice
        note is transcribed and answered like text; a file is kept for staff.
        """
        queued = QueuedAnswer(context.id, AnswerJob.from_payload(context.payload))
        job = queued.job
        subscription = subscription_request(job.text)
        if subscription is not None:
            await self._change_subscription(job, subscription)
            return
        async with self._sessionmaker() as session, session.begin():
            phone = await take_in(session, job)
            handed_off = not job.button and await is_handed_off(session, phone)
        if handed_off:
            # The person on staff reads it in the thread; the bot stays silent.
            if job.media is not None:
                attachment = await self._media.receive(job.channel, job.media)
                await self._keep(phone, job.source_id, describe(job.media), attachment)
            elif job.text is not None:
                await self._keep(phone, job.source_id, job.text, None)
            return
        delivery = Delivery(job.channel, job.address, phone, "")
        if job.button:
            await self._tapped(delivery, job.button, job.source_id)
            return
        covered: list[QueuedAnswer] = []
        if stored := await self._asker.already_answered(queued, delivery):
            delivery, covered = stored
        elif job.text is None:
            delivery = await self._answer_media(delivery, job.source_id, job.media)
        else:
            delivery, covered = await self._asker.answer_burst(queued, delivery)
        async with self._sessionmaker() as session, session.begin():
            await enqueue_delivery(session, delivery, once_for=job.source_id)
            await self._notify_privacy(session, delivery, job.source_id)
            for follower in covered:  # their jobs never run: what they would record, recorded here
                await take_in(session, follower.job)
            await JobRepository.from_session(session, self._clock).finish_queued([follower.id for follower in covered])
            if invitation := await self._asker.invitation(session, phone):
                invitation_id = await append_message(session, phone, Role.assistant, invitation)
                invited = replace(delivery, text=invitation, message_id=invitation_id, buttons=(), footer="")
                await enqueue_delivery(session, invited, once_for=f"{job.source_id}:invitation")

    async def _notify_privacy(self, session: AsyncSession, answered: Delivery, source_id: str) -> None:
        """The privacy notice, after the first answer a contact gets, recorded so it goes once."""
        if self._privacy_notice is None:
            return
        if not await ContactRepository.from_session(session).take_privacy_notice(answered.phone, self._clock()):
            return
        notice_id = await append_message(session, answered.phone, Role.assistant, self._privacy_notice)
        notice = replace(answered, text=self._privacy_notice, message_id=notice_id, buttons=(), footer="")
        await enqueue_delivery(session, notice, once_for=f"{source_id}:privacy")

    async def _change_subscription(self, job: AnswerJob, subscribe: bool) -> None:
        """ "BAJA" / "STOP" (or "ALTA" / "START"): no bot answer, the change confirmed in the thread."""
        assert job.text is not None
        async with self._sessionmaker() as session, session.begin():
            phone = await take_in(session, job)
            await set_subscription(session, phone, subscribe)
            await append_message(session, phone, Role.user, job.text)
            reply = self._chat.texts.subscribed if subscribe else self._chat.texts.unsubscribed
            message_id = await append_message(session, phone, Role.assistant, reply)
            delivery = Delivery(job.channel, job.address, phone, reply, message_id)
            await enqueue_delivery(session, delivery, once_for=job.source_id)
        log.info("campaign_subscription_changed", phone=mask_phone(phone), subscribed=subscribe)

    async def _answer_media(self, to: Delivery, source_id: str, media: InboundMedia | None) -> Delivery:
        """A voice note that could be transcribed is a question; any other file is kept, with a polite reply."""
        if media is None:
            return replace(to, text=self._chat.texts.only_text)
        attachment = await self._media.receive(to.channel, media)
        if media.kind == MediaKind.audio and attachment.content is not None:
            transcript, note = await self._media.transcribe(to.phone, attachment)
            if transcript:
                question = AskedQuestion(transcript, source_id, replace(attachment, transcript=transcript))
                return await self._asker.reply(to, [question])
            attachment = replace(attachment, note=note)
        await self._keep(to.phone, source_id, describe(media), attachment)
        return replace(to, text=reply_for(attachment, self._chat.texts))

    async def _keep(self, phone: str, source_id: str, content: str, attachment: AttachmentCreate | None) -> None:
        """Store a message the bot does not answer, once, even when its job runs again."""
        async with self._sessionmaker() as session, session.begin():
            if not await has_message_from(session, source_id):
                await append_message(session, phone, Role.user, content, source_id=source_id, attachment=attachment)

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
