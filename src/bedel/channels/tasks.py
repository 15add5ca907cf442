"""The channel jobs: answer one inbound message (or a burst of them), deliver one outbound text."""

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bedel.channels.bursts import Burst, find_burst, interrupted
from bedel.channels.media import describe, media_from, receive_media, reply_for
from bedel.channels.models import Channel
from bedel.channels.ports import MessageSender, SendFailed
from bedel.channels.schemas import Delivery, InboundMedia, MediaKind
from bedel.channels.service import ANSWER_JOB, DELIVER_JOB, enqueue_delivery
from bedel.chat.models import DeliveryStatus, Role
from bedel.chat.repository import ThreadRepository
from bedel.chat.schemas import AttachmentCreate
from bedel.chat.service import AskedQuestion, ChatService
from bedel.chat.threads import append_message, is_handed_off
from bedel.db import Clock
from bedel.errors import UpstreamUnavailable
from bedel.jobs.repository import JobRepository
from bedel.jobs.runner import Handler, JobContext, JobFailed, Postpone, RetryLater
from bedel.llm.ports import Transcriber
from bedel.phones import mask_phone

log = structlog.get_logger()

ONLY_TEXT_REPLY = "Por ahora solo puedo leer mensajes de texto. ¿Me escribes tu pregunta, por favor?"
UNAVAILABLE_REPLY = "En este momento no puedo responder. Escríbeme de nuevo en unos minutos, por favor."
# How often an answer being generated looks for a newer message of its burst.
INTERRUPT_POLL_S = 0.25


class ChannelTasks:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        chat: ChatService,
        senders: Mapping[Channel, MessageSender],
        *,
        transcriber: Transcriber | None,
        media_max_bytes: int,
        burst_window: timedelta,
        clock: Clock,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._chat = chat
        self._senders = senders
        self._transcriber = transcriber
        self._media_max_bytes = media_max_bytes
        self._burst_window = burst_window
        self._clock = clock

    def handlers(self) -> dict[str, Handler]:
        return {ANSWER_JOB: self.answer, DELIVER_JOB: self.deliver}

    async def answer(self, job: JobContext) -> None:
        """Answer through the same chat flow as `POST /chat`, unless a person has the conversation.

        Texts written in a row are answered together (see `bursts.py`): the first one's job
        answers them all and finishes the others' jobs in the transaction that queues the reply.
        A voice note is transcribed and answered like text; a file is kept for staff.
        """
        phone, text = job.payload["phone"], job.payload["text"]
        channel = Channel(job.payload["channel"])
        source_id = _source_id(job.payload)
        media = media_from(job.payload.get("media"))
        async with self._sessionmaker() as session:
            handed_off = await is_handed_off(session, phone)
        if handed_off:
            # The person on staff reads it in the thread; the bot stays silent.
            if media is not None:
                await self._keep(phone, source_id, describe(media), await self._receive(channel, media))
            elif text is not None:
                await self._keep(phone, source_id, text, None)
            return
        covered: list[int] = []
        message_id: uuid.UUID | None
        if stored := await self._chat.stored_answer(source_id):
            # A re-run after a crash delivers the answer already stored instead of asking again.
            reply, message_id = stored
            if text is not None:
                covered = await self._covered(await self._find_burst(job), message_id)
        elif text is None:
            reply, message_id = await self._answer_media(phone, source_id, channel, media)
        else:
            # The time is read before the burst: a text that comes in meanwhile is left to the watch below.
            now = self._clock()
            burst = await self._find_burst(job)
            quiet_at = burst.quiet_at(self._burst_window)
            if now < quiet_at:
                raise Postpone(quiet_at)
            reply, message_id = await self._ask_unless_interrupted(phone, burst)
            covered = burst.followers
        async with self._sessionmaker() as session, session.begin():
            delivery = Delivery(channel, job.payload["address"], phone, reply, message_id)
            await enqueue_delivery(session, delivery, once_for=source_id)
            await JobRepository.from_session(session, self._clock).finish_queued(covered)

    async def _answer_media(
        self, phone: str, source_id: str, channel: Channel, media: InboundMedia | None
    ) -> tuple[str, uuid.UUID | None]:
        """A voice note that could be transcribed is a question; any other file is kept, with a polite reply."""
        if media is None:
            return ONLY_TEXT_REPLY, None
        attachment = await self._receive(channel, media)
        if media.kind == MediaKind.audio and attachment.content is not None:
            transcript, note = await self._transcribe(phone, attachment)
            if transcript:
                question = AskedQuestion(transcript, source_id, replace(attachment, transcript=transcript))
                return await self._ask(phone, [question])
            attachment = replace(attachment, note=note)
        await self._keep(phone, source_id, describe(media), attachment)
        return reply_for(attachment), None

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
            if not await ThreadRepository.from_session(session).has_message_from(source_id):
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

    async def _ask_unless_interrupted(self, phone: str, burst: Burst) -> tuple[str, uuid.UUID | None]:
        """Ask, abandoning the generation when a newer text of the burst arrives before its answer is stored.

        The abandoned turn stores no answer; its questions stay stored, and the job runs again
        (postponed to now) to answer them together with the newer one.
        """
        questions = [AskedQuestion(payload["text"], _source_id(payload)) for _, payload in burst.jobs]
        if not self._burst_window:
            return await self._ask(phone, questions)
        asking = asyncio.create_task(self._ask(phone, questions))
        try:
            while not (await asyncio.wait({asking}, timeout=INTERRUPT_POLL_S))[0]:
                async with self._sessionmaker() as session:
                    newer = await interrupted(session, burst)
                # cancel() is False when the answer is already done: then it is sent.
                if newer and asking.cancel():
                    await asyncio.gather(asking, return_exceptions=True)
                    log.info("channel_answer_restarted", phone=mask_phone(phone))
                    raise Postpone(self._clock())
            return asking.result()
        finally:
            asking.cancel()

    async def _ask(self, phone: str, questions: list[AskedQuestion]) -> tuple[str, uuid.UUID | None]:
        try:
            answer = await self._chat.ask_together(phone, questions)
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


def _source_id(payload: dict[str, Any]) -> str:
    return f"{payload['channel']}:{payload['external_id']}"
