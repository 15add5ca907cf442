"""Asking the chat flow over a channel: a burst of texts or a transcribed voice note in, one answer out.

The answer job waits for a burst to go quiet (see `bursts.py`) and abandons an
answer being generated when a newer text of the burst arrives. A sender known
only by a business-scoped id may be verifying who they are, so identity
verification reads their messages before the chat flow does.
"""

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bedel.channels.bursts import Burst, InterruptWatch, find_burst
from bedel.channels.buttons import answer_buttons, handoff_buttons
from bedel.channels.jobs import QueuedAnswer
from bedel.channels.models import Channel
from bedel.channels.schemas import Delivery
from bedel.chat.service import AskedQuestion, ChatService
from bedel.chat.threads import list_threads
from bedel.db import Clock
from bedel.errors import UpstreamUnavailable
from bedel.identities.service import is_anonymous
from bedel.identities.verification import IdentityVerifier
from bedel.jobs.runner import Postpone
from bedel.phones import mask_phone

log = structlog.get_logger()

# How often the answers being generated look for a newer message of their bursts.
INTERRUPT_POLL_S = 0.25


class Asker:
    """Puts what a student wrote (or said in a voice note) to identity verification or the chat flow."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        chat: ChatService,
        verifier: IdentityVerifier,
        *,
        burst_window: timedelta,
        clock: Clock,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._chat = chat
        self._verifier = verifier
        self._burst_window = burst_window
        self._clock = clock
        self._watch = InterruptWatch(sessionmaker, INTERRUPT_POLL_S)

    async def already_answered(self, queued: QueuedAnswer, to: Delivery) -> tuple[Delivery, list[QueuedAnswer]] | None:
        """A re-run after a crash: the answer already stored, and the followers whose questions it covered."""
        stored = await self._chat.stored_answer(queued.job.source_id)
        if stored is None:
            return None
        covered = []
        if queued.job.text is not None:
            for follower in (await self._find_burst(queued)).answers[1:]:
                again = await self._chat.stored_answer(follower.job.source_id)
                if again is None or again[1] != stored[1]:
                    break
                covered.append(follower)
        return replace(to, text=stored[0], message_id=stored[1]), covered

    async def answer_burst(self, leader: QueuedAnswer, to: Delivery) -> tuple[Delivery, list[QueuedAnswer]]:
        """Once the phone is quiet, one answer to the leader's text and its followers', whose jobs it covers."""
        # The time is read before the burst: a text that comes in meanwhile is left to the watch in `_ask`.
        now = self._clock()
        burst = await self._find_burst(leader)
        quiet_at = burst.quiet_at(self._burst_window)
        if now < quiet_at:
            raise Postpone(quiet_at)
        # Every message of a burst is a text (see `bursts.py`).
        texts = [(queued.job.text, queued.job.source_id) for queued in burst.answers]
        questions = [AskedQuestion(text, source_id) for text, source_id in texts if text is not None]
        return await self.reply(to, questions, burst), burst.followers

    async def reply(self, to: Delivery, questions: list[AskedQuestion], burst: Burst | None = None) -> Delivery:
        """A sender known only by a business-scoped id may be verifying who they are; else the chat flow."""
        if is_anonymous(to.phone):
            async with self._sessionmaker() as session, session.begin():
                step = await self._verifier.step(session, to.phone, questions, self._clock())
            if step is not None:
                return replace(to, text=step[0], message_id=step[1])
        if burst is None or not self._burst_window:
            return await self._ask(to, questions)
        return await self._ask_unless_interrupted(to, questions, burst)

    async def invitation(self, session: AsyncSession, phone: str) -> str | None:
        """How to verify, once, for a sender known only by a business-scoped id."""
        if not is_anonymous(phone):
            return None
        return await self._verifier.invitation(session, phone, self._clock())

    async def _find_burst(self, leader: QueuedAnswer) -> Burst:
        if not self._burst_window:
            return Burst([leader])
        async with self._sessionmaker() as session:
            return await find_burst(session, leader)

    async def _ask_unless_interrupted(self, to: Delivery, questions: list[AskedQuestion], burst: Burst) -> Delivery:
        """Ask, abandoning the generation when a newer text of the burst arrives before its answer is stored.

        The abandoned turn stores no answer; its questions stay stored, and the job runs again
        (postponed to now) to answer them together with the newer one.
        """
        asking = asyncio.create_task(self._ask(to, questions))
        try:
            async with self._watch.watching(burst) as newer:
                either: set[asyncio.Future[Any]] = {asking, newer}
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                # cancel() is False when the answer is already done: then it is sent.
                if newer.done() and asking.cancel():
                    await asyncio.gather(asking, return_exceptions=True)
                    log.info("channel_answer_restarted", phone=mask_phone(to.phone))
                    raise Postpone(self._clock())
            return asking.result()
        finally:
            asking.cancel()

    async def _ask(self, to: Delivery, questions: list[AskedQuestion]) -> Delivery:
        # Only Meta's API sends reply buttons: over Twilio a handoff is taken at once, and no feedback is asked.
        confirm = to.channel == Channel.whatsapp
        try:
            answer = await self._chat.ask_together(to.phone, questions, confirm_handoff=confirm)
        except UpstreamUnavailable:
            log.warning("channel_answer_unavailable", phone=mask_phone(to.phone))
            return await self._unavailable(to)
        answered = replace(to, text=answer.answer, message_id=answer.message_id)
        if not confirm:
            return answered
        buttons, footer = answer_buttons(
            answer.thread_id, answer.message_id, self._chat.texts, handoff_offered=answer.handoff
        )
        return replace(answered, buttons=buttons, footer=footer)

    async def _unavailable(self, to: Delivery) -> Delivery:
        """The model did not answer. Like /chat's 503 the question is stored; the student is asked to write
        again and offered a person: with reply buttons where the channel has them, in words elsewhere."""
        texts = self._chat.texts
        if to.channel != Channel.whatsapp:
            return replace(to, text=texts.unavailable_offer.format(contact=self._chat.options.contact))
        async with self._sessionmaker() as session:
            thread = (await list_threads(session, phone=to.phone, status=None, limit=1, offset=0))[0]
        buttons, footer = handoff_buttons(thread.id, texts)
        return replace(to, text=texts.unavailable, buttons=buttons, footer=footer)
