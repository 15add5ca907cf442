"""What the conversations amounted to over a period, for the dashboard: the SQL, read in a few grouped
statements (a month is hundreds of thousands of messages; none is loaded one by one).

Read-only, and the way other packages read these figures (as they reach threads through `threads.py`).
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bedel.chat.models import Message, Role, Thread, ThreadStatus
from bedel.db import as_utc

# What an answer says when neither the documents nor the record had it: the instructions ask the
# model for these words and the offline engine writes them (texts' unknown_answer), in both languages.
NO_INFORMATION = ("no tengo esa información", "i don't have that information")
# Questions from the HTTP API carry no channel message id.
API_CHANNEL = "api"
TOP = 10


class Outcome(StrEnum):
    documents = "documents"  # answered citing the institution's documents
    other = "other"  # answered without documents: from the student's record, or the conversation itself
    unknown = "unknown"  # "no tengo esa información"
    handoff = "handoff"  # a person was asked for (or taken)


@dataclass(frozen=True)
class HourCount:
    """Messages of one UTC hour alike: questions of one channel, or answers of one outcome and model."""

    hour: datetime
    role: Role
    channel: str | None
    outcome: Outcome | None
    model: str | None
    messages: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class CitedDocument:
    document_id: str
    title: str
    answers: int


@dataclass(frozen=True)
class ChatActivity:
    hours: list[HourCount]
    # (answer time in ms, how many answers took it), shortest first.
    latencies: list[tuple[int, int]]
    cited: list[CitedDocument]
    # The questions answered "no tengo esa información", most asked first (lowercased).
    unanswered: list[tuple[str, int]]
    # When each conversation now waiting for a person was handed over, longest waiting first.
    waiting_since: list[datetime]


class ActivityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    @classmethod
    def from_session(cls, session: AsyncSession) -> "ActivityRepository":
        return cls(session)

    async def between(self, start: datetime, end: datetime) -> ChatActivity:
        return ChatActivity(
            hours=await self.hours(start, end),
            latencies=await self.latencies(start, end),
            cited=await self.cited(start, end),
            unanswered=await self.unanswered(start, end),
            waiting_since=await self.waiting_since(),
        )

    async def hours(self, start: datetime, end: datetime) -> list[HourCount]:
        """Questions by channel and answers by outcome and model, per hour, in one pass over the period."""
        hour = self._hour(Message.created_at)
        channel = case((Message.role == Role.user, self._channel(Message.source_id)))
        outcome = case((Message.role == Role.assistant, self._outcome(Message)))
        rows = await self.session.execute(
            select(
                hour,
                Message.role,
                channel,
                outcome,
                Message.model,
                func.count(),
                func.sum(Message.input_tokens),
                func.sum(Message.output_tokens),
            )
            .where(_within(Message, start, end), or_(Message.role == Role.user, _answer(Message)))
            .group_by(hour, Message.role, channel, outcome, Message.model)
        )
        return [
            HourCount(
                hour=_hour_value(at),
                role=Role(role),
                channel=channel_name,
                outcome=Outcome(result) if result else None,
                model=model,
                messages=int(count),
                input_tokens=int(tokens_in or 0),
                output_tokens=int(tokens_out or 0),
            )
            for at, role, channel_name, result, model, count, tokens_in, tokens_out in rows
        ]

    async def latencies(self, start: datetime, end: datetime) -> list[tuple[int, int]]:
        rows = await self.session.execute(
            select(Message.latency_ms, func.count())
            .where(_within(Message, start, end), _answer(Message), Message.latency_ms.is_not(None))
            .group_by(Message.latency_ms)
            .order_by(Message.latency_ms)
        )
        return [(int(latency or 0), int(count)) for latency, count in rows]

    async def cited(self, start: datetime, end: datetime) -> list[CitedDocument]:
        """The documents the period's answers cited most, each counted once per answer."""
        document_id: ColumnElement[Any]
        title: ColumnElement[Any]
        if self.dialect == "postgresql":
            source = func.jsonb_array_elements(Message.sources).table_valued("value", joins_implicitly=True)
            document_id = source.c.value.op("->>")("document_id")
            title = source.c.value.op("->>")("title")
        else:
            source = func.json_each(Message.sources).table_valued("value", joins_implicitly=True)
            document_id = func.json_extract(source.c.value, "$.document_id")
            title = func.json_extract(source.c.value, "$.title")
        answers = func.count(func.distinct(Message.id))
        rows = await self.session.execute(
            select(document_id, func.max(title), answers)
            .select_from(Message)
            .join(source, literal(True))
            .where(_within(Message, start, end), _answer(Message))
            .group_by(document_id)
            .order_by(answers.desc(), document_id)
            .limit(TOP)
        )
        return [CitedDocument(str(found), str(name or ""), int(count)) for found, name, count in rows]

    async def unanswered(self, start: datetime, end: datetime) -> list[tuple[str, int]]:
        """The question just before each "no tengo esa información" answer, grouped as written."""
        answer, question = aliased(Message), aliased(Message)
        text = func.lower(func.trim(question.content))
        asked = func.count()
        rows = await self.session.execute(
            select(text, asked)
            .select_from(answer)
            .join(
                question,
                and_(
                    question.thread_id == answer.thread_id,
                    question.seq == answer.seq - 1,
                    question.role == Role.user,
                ),
            )
            .where(_within(answer, start, end), _answer(answer), self._outcome(answer) == Outcome.unknown)
            .group_by(text)
            .order_by(asked.desc(), text)
            .limit(TOP)
        )
        return [(str(words), int(count)) for words, count in rows]

    async def waiting_since(self) -> list[datetime]:
        """Each handed-over conversation since its last handoff answer (or its last change, when staff
        handed it over themselves)."""
        handed = func.max(Message.created_at)
        rows = await self.session.execute(
            select(Thread.id, Thread.updated_at, handed)
            .outerjoin(Message, and_(Message.thread_id == Thread.id, Message.handoff.is_(True)))
            .where(Thread.status == ThreadStatus.handoff)
            .group_by(Thread.id, Thread.updated_at)
        )
        return sorted(as_utc(at or changed) for _, changed, at in rows)

    def _hour(self, column: Any) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            # In UTC whatever the session's time zone.
            return func.date_trunc("hour", func.timezone("UTC", column))
        return func.strftime("%Y-%m-%d %H:00:00", column)

    def _channel(self, source_id: Any) -> ColumnElement[Any]:
        # A channel message id is "<channel>:<vendor id>" (channels' jobs write it).
        if self.dialect == "postgresql":
            prefix = func.split_part(source_id, ":", 1)
        else:
            prefix = func.substr(source_id, 1, func.instr(source_id, ":") - 1)
        return func.coalesce(func.nullif(prefix, ""), API_CHANNEL)

    def _outcome(self, message: Any) -> ColumnElement[Any]:
        length = func.jsonb_array_length if self.dialect == "postgresql" else func.json_array_length
        content = func.lower(message.content)
        return case(
            (message.handoff.is_(True), Outcome.handoff.value),
            (length(message.sources) > 0, Outcome.documents.value),
            (or_(*(content.contains(words) for words in NO_INFORMATION)), Outcome.unknown.value),
            else_=Outcome.other.value,
        )


def _within(message: Any, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(message.created_at >= start, message.created_at < end)


def _answer(message: Any) -> ColumnElement[bool]:
    """An answer of the assistant's (what a campaign sent into the thread has no model)."""
    return and_(message.role == Role.assistant, message.model.is_not(None))


def _hour_value(value: Any) -> datetime:
    # PostgreSQL gives a timestamp, SQLite the text strftime wrote.
    return as_utc(value if isinstance(value, datetime) else datetime.fromisoformat(value))


async def chat_activity(session: AsyncSession, start: datetime, end: datetime) -> ChatActivity:
    """Questions, answers, citations and waiting handoffs from `start` up to (not including) `end`."""
    return await ActivityRepository.from_session(session).between(start, end)
