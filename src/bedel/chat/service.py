"""The conversation engine: one question in, one stored answer out.

Business rules: a question is committed before the model is called, so a
failing LLM loses nothing; one conversation is answered strictly in order;
the prompt carries only the caller's own record; no answer leaves or is stored
with another student's identifiers (chat/guard.py); old turns are folded into
a rolling summary so a long thread costs no more than a short one.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, NamedTuple

import anyio
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bedel.budgets.service import Budget, TokenBudgets, record_usage, spent_budget
from bedel.chat.citations import MarkerFilter, cited_sources
from bedel.chat.guard import Guarded, SentenceBuffer, report_withheld, withhold_others
from bedel.chat.locks import ConversationLocks
from bedel.chat.models import Role, ThreadStatus
from bedel.chat.prompt import AssistantOptions, build_prompt, fit_history, record_fields
from bedel.chat.repository import StoredTurn, ThreadRepository
from bedel.chat.schemas import AttachmentCreate, ChatAnswer, Source, StudentSummary, UsageOut
from bedel.chat.tools import CallerTools
from bedel.db import Clock, utcnow
from bedel.errors import Conflict, UpstreamUnavailable
from bedel.llm.ports import ChatModel, Completion, Passage, Prompt, Retriever, Turn, Usage
from bedel.ops.metrics import ChatStage, chat_stage
from bedel.students.fields import FieldCatalog
from bedel.students.repository import StudentRepository
from bedel.students.schemas import StudentRecord
from bedel.terms import english_words, is_english, to_spanish
from bedel.texts.catalog import texts_for

log = structlog.get_logger()

RECENT_MESSAGES_LIMIT = 60
UNLIMITED = TokenBudgets()
SUMMARY_BATCH = 8
# Earlier questions that join the current one in the search: "¿y cuánto tarda?" needs its topic.
CONTEXT_QUESTIONS = 2
LEASE_POLL_S = 0.05
# How long a question waits behind an earlier one from the same phone before a 409.
TURN_WAIT_S = 60.0


class AskedQuestion(NamedTuple):
    text: str
    # The channel message it came from (e.g. "whatsapp:<wamid>"): stored once, its answer found again.
    source_id: str | None = None
    # The voice note a transcribed question came from, stored with it.
    attachment: AttachmentCreate | None = None


@dataclass(frozen=True)
class Turnaround:
    """What the first transaction of a question hands to the model call."""

    thread_id: uuid.UUID
    phone: str
    lease: uuid.UUID
    # The seq the answer takes: right after the turn's questions.
    next_seq: int
    summary: str
    history: list[StoredTurn]
    student: StudentRecord | None
    question_id: uuid.UUID
    # A person has the conversation: the question is stored and the bot does not answer.
    handed_off: bool
    # A token budget was spent: the stored reply (its id and text) that says so, given instead of the model's.
    budget_reply: tuple[uuid.UUID, str] | None = None


@dataclass(frozen=True)
class Draft:
    """What a turn asks the model, and what that was made from: the same for an answer and a preview."""

    prompt: Prompt
    passages: list[Passage]
    # The new summary and the last seq it covers, when old turns were folded to fit the budget.
    folded: tuple[str, int] | None
    # Tokens spent finding the Spanish words of a question in English.
    search_usage: Usage
    retrieval_s: float

    def counted(self, completion: Completion) -> Completion:
        """The completion with the search's tokens added to its usage."""
        if not self.search_usage.total_tokens:
            return completion
        return replace(completion, usage=_sum(completion.usage, self.search_usage))


@dataclass(frozen=True)
class Preview:
    """What a turn would answer, beside what it was made from; nothing of it is stored."""

    answer: str
    student: StudentRecord | None
    # The record's fields as the instructions show them (label and value).
    fields: list[dict[str, Any]]
    # The passages retrieved (relevant enough to answer from), in prompt order.
    passages: list[Passage]
    sources: list[Source]
    instructions: str
    handoff: bool
    # A person has the conversation: a real turn would store the question and not ask the model.
    handed_off: bool
    usage: Usage
    model: str
    latency_ms: int


class ChatService:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        model: ChatModel,
        catalog: FieldCatalog,
        template: Any,
        options: AssistantOptions,
        knowledge: Retriever,
        lease: timedelta,
        budgets: TokenBudgets = UNLIMITED,
        clock: Clock = utcnow,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._model = model
        self._catalog = catalog
        self._template = template
        self.options = options
        # What Bedel itself tells students in the configured language; a request may ask for another.
        self.texts = texts_for(options.language)
        self._knowledge = knowledge
        # How long a turn may go silent before another replica may take the conversation over.
        self._lease = lease
        self._locks = ConversationLocks()
        # Turns whose lease could not be given back, by phone.
        self._unreleased: dict[str, Turnaround] = {}
        self._budgets = budgets
        self._clock = clock

    async def ask(
        self,
        phone: str,
        question: str,
        options: AssistantOptions | None = None,
        template: Any = None,
        *,
        source_id: str | None = None,
        confirm_handoff: bool = False,
    ) -> ChatAnswer:
        """`source_id` names the channel message the question came from (see `stored_answer`).

        With `confirm_handoff` (a channel with reply buttons), a handoff the model asks for is only
        offered: the answer says `handoff` but the conversation stays with the bot until the student
        confirms.
        """
        async for item in self._answer(
            phone,
            [AskedQuestion(question, source_id)],
            options,
            template,
            streaming=False,
            confirm_handoff=confirm_handoff,
        ):
            if isinstance(item, ChatAnswer):
                return item
        raise AssertionError("_answer always ends with a ChatAnswer")

    async def ask_together(
        self, phone: str, questions: Sequence[AskedQuestion], *, confirm_handoff: bool = False
    ) -> ChatAnswer:
        """One answer to messages written in a row, each stored as its own question.

        Questions already stored (by a turn abandoned for a newer message) are not stored
        again; the answer covers them all, and `stored_answer` finds it from any of them.
        `confirm_handoff` as in `ask`.
        """
        async for item in self._answer(
            phone, list(questions), None, None, streaming=False, confirm_handoff=confirm_handoff
        ):
            if isinstance(item, ChatAnswer):
                return item
        raise AssertionError("_answer always ends with a ChatAnswer")

    def ask_stream(
        self,
        phone: str,
        question: str,
        options: AssistantOptions | None = None,
        template: Any = None,
    ) -> AsyncIterator[str | ChatAnswer]:
        """Yield text deltas, then the stored `ChatAnswer`."""
        return self._answer(phone, [AskedQuestion(question)], options, template, streaming=True)

    async def stored_answer(self, source_id: str) -> tuple[str, uuid.UUID] | None:
        """The answer already stored for the question from `source_id`: a job re-run after a crash
        delivers it instead of asking again."""
        async with self._sessionmaker() as session:
            answer = await ThreadRepository.from_session(session).answer_to(source_id)
        return (answer.content, answer.id) if answer is not None else None

    async def _answer(
        self,
        phone: str,
        questions: list[AskedQuestion],
        options: AssistantOptions | None,
        template: Any,
        *,
        streaming: bool,
        confirm_handoff: bool = False,
    ) -> AsyncIterator[str | ChatAnswer]:
        started = time.perf_counter()
        question = "\n".join(q.text for q in questions)
        options = options or self._options_for(question)
        async with self._locks.hold(phone):
            if (unreleased := self._unreleased.pop(phone, None)) is not None:
                await self._release(phone, unreleased)
            begun = time.perf_counter()
            turn = await self._begin(phone, questions, options)
            database_s = time.perf_counter() - begun
            if turn.handed_off:
                # A person has the conversation: a reminder, not stored.
                yield _chat_answer(
                    turn, turn.question_id, self.handoff_notice(options), handoff=True, latency_ms=_ms_since(started)
                )
                return
            if turn.budget_reply is not None:
                # A budget is spent: the stored reply that says so; with reply buttons, a person is offered.
                reply_id, reply = turn.budget_reply
                yield _chat_answer(turn, reply_id, reply, handoff=confirm_handoff, latency_ms=_ms_since(started))
                return
            keeper = asyncio.create_task(self._keep_lease(turn))
            try:
                tools = CallerTools(turn.student)
                retrieving = time.perf_counter()
                draft = await self._draft(turn, question, options, template)
                chat_stage(ChatStage.retrieval).observe(draft.retrieval_s)
                asked = retrieving + draft.retrieval_s
                if streaming:
                    completion = None
                    markers, sentences = MarkerFilter(), SentenceBuffer()
                    async for item in self._model.stream(draft.prompt, tools):
                        if isinstance(item, Completion):
                            completion = item
                        elif text := sentences.feed(markers.feed(item)):
                            yield (await self._withhold(text, turn.student, options)).text
                    if rest := sentences.feed(markers.flush()) + sentences.flush():
                        yield (await self._withhold(rest, turn.student, options)).text
                    assert completion is not None
                else:
                    completion = await self._model.complete(draft.prompt, tools)
                completion = draft.counted(completion)
                chat_stage(ChatStage.llm).observe(time.perf_counter() - asked)
                latency_ms = _ms_since(started)
                finishing = time.perf_counter()
                answer = await self._finish(
                    turn,
                    completion,
                    draft.passages,
                    tools.handoff_requested,
                    draft.folded,
                    latency_ms,
                    confirm_handoff,
                    options,
                )
                chat_stage(ChatStage.database).observe(database_s + time.perf_counter() - finishing)
            except BaseException:
                await self._release(phone, turn)
                raise
            finally:
                keeper.cancel()
        yield answer

    async def _begin(self, phone: str, questions: list[AskedQuestion], options: AssistantOptions) -> Turnaround:
        lease = uuid.uuid4()
        deadline = time.monotonic() + TURN_WAIT_S
        while True:
            async with self._sessionmaker() as session, session.begin():
                threads = ThreadRepository.from_session(session)
                turn = await threads.open_turn(phone, lease, self._lease)
                if turn is None:
                    await threads.create([phone])
                    turn = await threads.open_turn(phone, lease, self._lease)
                if turn is not None:
                    history = await threads.recent_turns(turn.thread_id, turn.summarized_through, RECENT_MESSAGES_LIMIT)
                    sources = [q.source_id for q in questions if q.source_id]
                    stored = await threads.stored_questions(turn.thread_id, sources)
                    # Questions stored by an abandoned turn are part of this one, not of its history.
                    abandoned = {seq for seq, _ in stored.values()}
                    history = [m for m in history if m.seq not in abandoned]
                    seq, question_id = turn.seq, None
                    for q in questions:
                        if q.source_id in stored:
                            question_id = stored[q.source_id][1]
                            continue
                        question_id = await threads.add_message(
                            thread_id=turn.thread_id, seq=seq, role=Role.user, content=q.text, source_id=q.source_id
                        )
                        if q.attachment is not None:
                            await threads.add_attachment(question_id, q.attachment)
                        seq += 1
                    assert question_id is not None
                    student = await StudentRepository.from_session(session).get_record(phone)
                    handed_off = turn.status == ThreadStatus.handoff
                    budget_reply = None
                    spent = None if handed_off else await spent_budget(session, phone, self._clock(), self._budgets)
                    if spent is not None:
                        text = self.budget_notice(spent, options)
                        reply_id = await threads.add_message(
                            thread_id=turn.thread_id, seq=seq, role=Role.assistant, content=text
                        )
                        budget_reply = (reply_id, text)
                        await threads.close_turn(turn.thread_id, lease, message_count=seq)
                    elif handed_off:
                        await threads.close_turn(turn.thread_id, lease, message_count=seq - 1)
                    return Turnaround(
                        thread_id=turn.thread_id,
                        phone=phone,
                        lease=lease,
                        next_seq=seq,
                        summary=turn.summary,
                        history=history,
                        student=student,
                        question_id=question_id,
                        handed_off=handed_off,
                        budget_reply=budget_reply,
                    )
            # Another replica is answering this conversation: wait for its turn to end.
            if time.monotonic() > deadline:
                raise Conflict("an earlier question from this phone is still being answered; ask again", retry_after=5)
            await asyncio.sleep(LEASE_POLL_S)

    def _options_for(self, question: str) -> AssistantOptions:
        """The configured options, in English for a question written in English: the student's language
        wins over the configured one, so an exchange student gets English."""
        return replace(self.options, language="en") if is_english(question) else self.options

    async def _draft(self, turn: Turnaround, question: str, options: AssistantOptions, template: Any) -> Draft:
        """The turn's steps before the model: retrieval, memory (folding old turns when they no longer
        fit) and the prompt."""
        retrieving = time.perf_counter()
        search_text, search_usage = await self._search_text(question)
        passages = await self._passages(turn, question, search_text, options)
        retrieval_s = time.perf_counter() - retrieving
        window, folded = await self._memory(turn, options)
        prompt = build_prompt(
            template=template or self._template,
            options=options,
            catalog=self._catalog,
            student=turn.student,
            summary=folded[0] if folded else turn.summary,
            history=window,
            question=question,
            passages=passages,
            search_text=search_text,
        )
        return Draft(prompt, passages, folded, search_usage, retrieval_s)

    async def _search_text(self, question: str) -> tuple[str, Usage]:
        """What to search the Spanish documents with: the question, or its Spanish words when written in English."""
        if not is_english(question):
            return question, Usage(0, 0)
        return await self._model.search_terms(question)

    async def _passages(
        self, turn: Turnaround, question: str, search_text: str, options: AssistantOptions
    ) -> list[Passage]:
        """Passages relevant enough to answer from, found with the question and the student's previous ones.

        Every turn searches, whatever the record holds: a rule that names a record field is the
        documents' to answer, and with a model the passages always reach the prompt. A question in
        English is searched in Spanish words and as written (a school may have English documents too)."""
        earlier = [message.content for message in turn.history if message.role == Role.user][-CONTEXT_QUESTIONS:]
        limit = options.passages_limit
        found = await self._knowledge.retrieve(
            search_text, [to_spanish(text) if is_english(text) else text for text in earlier], limit
        )
        if search_text != question:
            as_written = await self._knowledge.retrieve(english_words(question), earlier, limit)
            merged = {passage.chunk_id: passage for passage in [*as_written, *found]}
            found = sorted(merged.values(), key=lambda passage: -passage.relevance)[:limit]
        return [passage for passage in found if passage.relevance >= options.min_relevance]

    async def _keep_lease(self, turn: Turnaround) -> None:
        """Renew the lease while the model works: a slow turn keeps its place, a dead replica loses it."""
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            try:
                async with self._sessionmaker() as session, session.begin():
                    await ThreadRepository.from_session(session).renew_lease(turn.thread_id, turn.lease, self._lease)
            except Exception:
                log.exception("lease_renewal_failed", thread_id=str(turn.thread_id))

    async def _memory(self, turn: Turnaround, options: AssistantOptions) -> tuple[list[Turn], tuple[str, int] | None]:
        """The recent turns for the prompt, folding older ones into the summary first.

        When a turn no longer fits the budget, it and the oldest turns of the window
        (a batch in all) are summarised before the prompt is built, so every turn is
        either in the prompt or in the summary, and the summary is rewritten about once
        per batch rather than on every question. Returns the window and, when it folded,
        the new summary with the last seq it covers.
        """
        history = [Turn(m.role, m.content) for m in turn.history]
        # At most a window of turns plus a batch is ever unfolded, so loading RECENT_MESSAGES_LIMIT suffices.
        window = fit_history(history[-(RECENT_MESSAGES_LIMIT - SUMMARY_BATCH) :], options.history_token_budget)
        overflow = len(history) - len(window)
        if not overflow:
            return window, None
        fold = min(len(history), overflow + SUMMARY_BATCH - 1)
        try:
            summary = await self._model.summarize(turn.summary, history[:fold], options.language)
        except UpstreamUnavailable:
            log.warning("summary_skipped", thread_id=str(turn.thread_id))
            return window, None
        return history[fold:], (summary, turn.history[fold - 1].seq)

    async def _finish(
        self,
        turn: Turnaround,
        completion: Completion,
        passages: list[Passage],
        handoff: bool,
        folded: tuple[str, int] | None,
        latency_ms: int,
        confirm_handoff: bool,
        options: AssistantOptions,
    ) -> ChatAnswer:
        text, sources = cited_sources(completion.text, passages)
        hand_over = handoff and not confirm_handoff
        if hand_over:
            # Whatever the model said, the student learns that a person takes over.
            text = f"{text}\n\n{self.handoff_notice(options)}".strip()
        elif handoff:
            # The model offered a person without saying anything itself.
            text = text.strip() or texts_for(options.language).handoff_offer
        async with self._sessionmaker() as session, session.begin():
            guarded = await self._withhold(text, turn.student, options, session)
            text = guarded.text
            threads = ThreadRepository.from_session(session)
            closed = await threads.close_turn(
                turn.thread_id,
                turn.lease,
                message_count=turn.next_seq,
                status=ThreadStatus.handoff if hand_over else None,
                summary=folded[0] if folded else None,
                summarized_through=folded[1] if folded else None,
            )
            if not closed:
                raise Conflict("this answer took too long and the conversation moved on; ask again", retry_after=1)
            message_id = await threads.add_message(
                thread_id=turn.thread_id,
                seq=turn.next_seq,
                role=Role.assistant,
                content=text,
                sources=[source.model_dump() for source in sources],
                handoff=handoff,
                model=completion.model,
                input_tokens=completion.usage.input_tokens,
                output_tokens=completion.usage.output_tokens,
                usage_estimated=completion.usage.estimated,
                latency_ms=latency_ms,
            )
            usage = completion.usage
            await record_usage(
                session, turn.phone, self._clock(), usage.input_tokens, usage.output_tokens, self._budgets
            )
        report_withheld(guarded, turn.thread_id)
        return _chat_answer(
            turn, message_id, text, handoff=handoff, latency_ms=latency_ms, sources=sources, completion=completion
        )

    async def _release(self, phone: str, turn: Turnaround) -> None:
        """Give the conversation back after a failure. When that fails too (the database is out), the
        phone's next turn here gives it back first, rather than waiting for the lease to lapse."""
        try:
            # Shielded: a client that hung up on a stream cancels this task, and the release must still run.
            with anyio.CancelScope(shield=True):
                async with self._sessionmaker() as session, session.begin():
                    await ThreadRepository.from_session(session).close_turn(
                        turn.thread_id, turn.lease, message_count=turn.next_seq - 1
                    )
        except Exception:
            log.exception("lease_release_failed", thread_id=str(turn.thread_id))
            self._unreleased[phone] = turn

    async def _withhold(
        self,
        text: str,
        student: StudentRecord | None,
        options: AssistantOptions,
        session: AsyncSession | None = None,
    ) -> Guarded:
        """`text` without other students' identifiers; the lookup runs in `session`, or its own one."""

        async def lookup(keys: Sequence[str]) -> list[tuple[str, str, str]]:
            if session is not None:
                return await StudentRepository.from_session(session).owners_of_keys(keys)
            async with self._sessionmaker() as own:
                return await StudentRepository.from_session(own).owners_of_keys(keys)

        caller = student.phone if student else None
        return await withhold_others(text, lookup, caller=caller, placeholder=texts_for(options.language).withheld)

    def handoff_notice(self, options: AssistantOptions | None = None) -> str:
        """What a student is told when a person takes the conversation over."""
        options = options or self.options
        return texts_for(options.language).handoff_notice.format(contact=options.contact)

    def budget_notice(self, budget: Budget, options: AssistantOptions | None = None) -> str:
        """What a student is told instead of an answer once a token budget is spent."""
        options = options or self.options
        texts = texts_for(options.language)
        notice = texts.budget_student if budget is Budget.student_daily else texts.budget_institution
        return notice.format(contact=options.contact)

    def options_with(self, **changes: Any) -> AssistantOptions:
        return replace(self.options, **{k: v for k, v in changes.items() if v is not None})

    async def preview(self, phone: str, question: str) -> Preview:
        """Answer `question` as a turn from `phone` would, with the same retrieval, memory, prompt and
        model, but writing nothing: no thread, message, lease, summary or turn metric. The
        conversation's stored turns are read as a turn reads them."""
        started = time.perf_counter()
        options = self._options_for(question)
        async with self._sessionmaker() as session:
            threads = ThreadRepository.from_session(session)
            found = await threads.find_many(phone=phone, status=None, limit=1, offset=0)
            thread = found[0] if found else None
            history = []
            if thread is not None:
                history = await threads.recent_turns(thread.id, thread.summarized_through, RECENT_MESSAGES_LIMIT)
            student = await StudentRepository.from_session(session).get_record(phone)
        # A turn that holds no lease and reserves no seq: only what the pipeline reads is real.
        turn = Turnaround(
            thread_id=thread.id if thread else uuid.UUID(int=0),
            phone=phone,
            lease=uuid.UUID(int=0),
            next_seq=0,
            summary=thread.summary if thread else "",
            history=history,
            student=student,
            question_id=uuid.UUID(int=0),
            handed_off=thread is not None and thread.status == ThreadStatus.handoff,
        )
        tools = CallerTools(student)
        draft = await self._draft(turn, question, options, None)
        completion = draft.counted(await self._model.complete(draft.prompt, tools))
        text, sources = cited_sources(completion.text, draft.passages)
        guarded = await self._withhold(text, student, options)
        report_withheld(guarded, thread.id if thread else None)
        return Preview(
            answer=guarded.text,
            student=student,
            fields=record_fields(student, self._catalog),
            passages=draft.passages,
            sources=sources,
            instructions=draft.prompt.messages[0]["content"],
            handoff=tools.handoff_requested,
            handed_off=turn.handed_off,
            usage=completion.usage,
            model=completion.model,
            latency_ms=_ms_since(started),
        )


def _chat_answer(
    turn: Turnaround,
    message_id: uuid.UUID,
    text: str,
    *,
    handoff: bool,
    latency_ms: int,
    sources: list[Source] | None = None,
    completion: Completion | None = None,
) -> ChatAnswer:
    """The answer to `turn`; without a completion, one no model wrote (model "none", no tokens)."""
    usage = completion.usage if completion is not None else Usage(0, 0)
    student = turn.student
    return ChatAnswer(
        answer=text,
        thread_id=turn.thread_id,
        message_id=message_id,
        student=StudentSummary(known=student is not None, name=student.name if student else None),
        sources=sources or [],
        handoff=handoff,
        usage=UsageOut(
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, total_tokens=usage.total_tokens
        ),
        model=completion.model if completion is not None else "none",
        latency_ms=latency_ms,
    )


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _sum(first: Usage, second: Usage) -> Usage:
    total_in, total_out = first.input_tokens + second.input_tokens, first.output_tokens + second.output_tokens
    return Usage(total_in, total_out, estimated=first.estimated or second.estimated)
