"""What the conversations amounted to over a period, for the dashboard: the SQL, read in a few grouped
statements (a month is hundreds of thousands of messages; none is loaded one by one).

Read-only, and the way other packages read these figures (as they reach threads through `threads.py`).
"""

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
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
LATENCY_STEP_MS = 10


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


@dataclass
class DayFigures:
    """One UTC day's figures, in a form that adds up over days."""

    hours: list[HourCount] = field(default_factory=list)
    latencies: Counter[int] = field(default_factory=Counter)
    cited: Counter[str] = field(default_factory=Counter)
    titles: dict[str, str] = field(default_factory=dict)
    unanswered: Counter[str] = field(default_factory=Counter)


class PastDays:
    """Figures of whole days before today, kept in this process: a month is hundreds of thousands of
    messages, too many to read again on every view, and a past day's messages no longer change. An entry
    lapses after an hour (a conversation forgotten since is then left out); today is always read afresh.
    """

    def __init__(self, ttl_s: float = 3600.0, size: int = 400) -> None:
        self._ttl_s, self._size = ttl_s, size
        self._days: dict[date, tuple[float, DayFigures]] = {}

    def get(self, day: date) -> DayFigures | None:
        kept = self._days.get(day)
        return kept[1] if kept and time.monotonic() - kept[0] < self._ttl_s else None

    def keep(self, day: date, figures: DayFigures) -> None:
        self._days[day] = (time.monotonic(), figures)
        while len(self._days) > self._size:
            del self._days[min(self._days)]


class ActivityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    @classmethod
    def from_session(cls, session: AsyncSession) -> "ActivityRepository":
        return cls(session)

    async def days(self, start: datetime, end: datetime) -> dict[date, DayFigures]:
        """The figures of each day with messages from `start` up to (not including) `end`."""
        found: dict[date, DayFigures] = defaultdict(DayFigures)
        for row in await self.hours(start, end):
            found[row.hour.date()].hours.append(row)
        for day, latency, count in await self.latencies(start, end):
            found[day].latencies[latency] += count
        for day, document_id, title, count in await self.cited(start, end):
            found[day].cited[document_id] += count
            found[day].titles[document_id] = title
        for day, question, count in await self.unanswered(start, end):
            found[day].unanswered[question] += count
        return dict(found)

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

    async def latencies(self, start: datetime, end: datetime) -> list[tuple[date, int, int]]:
        """(day, answer time to 10 ms, answers): a month's percentiles from a few thousand rows."""
        day = self._day(Message.created_at)
        rounded = Message.latency_ms // LATENCY_STEP_MS * LATENCY_STEP_MS
        rows = await self.session.execute(
            select(day, rounded, func.count())
            .where(_within(Message, start, end), _answer(Message), Message.latency_ms.is_not(None))
            .group_by(day, rounded)
        )
        return [(_day_value(at), int(latency or 0), int(count)) for at, latency, count in rows]

    async def cited(self, start: datetime, end: datetime) -> list[tuple[date, str, str, int]]:
        """How many answers cited each document, per day."""
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
        day = self._day(Message.created_at)
        rows = await self.session.execute(
            select(day, document_id, func.max(title), func.count(func.distinct(Message.id)))
            .select_from(Message)
            .join(source, literal(True))
            .where(_within(Message, start, end), _answer(Message))
            .group_by(day, document_id)
        )
        return [(_day_value(at), str(found), str(name or ""), int(count)) for at, found, name, count in rows]

    async def unanswered(self, start: datetime, end: datetime) -> list[tuple[date, str, int]]:
        """The question just before each "no tengo esa información" answer, grouped as written, per day."""
        answer, question = aliased(Message), aliased(Message)
        text = func.lower(func.trim(question.content))
        day = self._day(answer.created_at)
        rows = await self.session.execute(
            select(day, text, func.count())
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
            .group_by(day, text)
        )
        return [(_day_value(at), str(words), int(count)) for at, words, count in rows]

    async def waiting_since(self) -> list[datetime]:
        """Each handed-over conversation since its last handoff answer (or its last change, when staff
        handed it over themselves)."""
        # Per conversation through the (thread_id, seq) index, not a pass over every message.
        handed = (
            select(func.max(Message.created_at))
            .where(Message.thread_id == Thread.id, Message.handoff.is_(True))
            .scalar_subquery()
        )
        rows = await self.session.execute(
            select(Thread.id, Thread.updated_at, handed).where(Thread.status == ThreadStatus.handoff)
        )
        return sorted(as_utc(at or changed) for _, changed, at in rows)

    def _day(self, column: Any) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            return func.date(func.timezone("UTC", column))
        return func.date(column)

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


def _day_value(value: Any) -> date:
    # PostgreSQL gives a date, SQLite text.
    return value if isinstance(value, date) else date.fromisoformat(value)


async def chat_activity(
    session: AsyncSession, start: datetime, end: datetime, today: date, past: PastDays
) -> ChatActivity:
    """Questions, answers, citations from `start` up to (not including) `end` (both midnights, UTC), and
    the handoffs waiting now. Days before `today` come from `past` when it has them, and are kept there."""
    repository = ActivityRepository.from_session(session)
    days = [start.date() + timedelta(days=n) for n in range((end - start).days)]
    missing = [day for day in days if day < today and past.get(day) is None]
    if missing:
        read = await repository.days(_midnight(missing[0]), _midnight(missing[-1] + timedelta(days=1)))
        for day in missing:
            past.keep(day, read.get(day, DayFigures()))
    live = await repository.days(max(start, _midnight(today)), end) if end > _midnight(today) else {}
    figures = [live.get(day) if day >= today else past.get(day) for day in days]
    return _combined([found for found in figures if found is not None], await repository.waiting_since())


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def _combined(days: list[DayFigures], waiting_since: list[datetime]) -> ChatActivity:
    latencies: Counter[int] = Counter()
    cited: Counter[str] = Counter()
    unanswered: Counter[str] = Counter()
    titles: dict[str, str] = {}
    for day in days:
        latencies.update(day.latencies)
        cited.update(day.cited)
        unanswered.update(day.unanswered)
        titles |= day.titles
    top_cited = sorted(cited.items(), key=lambda item: (-item[1], item[0]))[:TOP]
    return ChatActivity(
        hours=[row for day in days for row in day.hours],
        latencies=sorted(latencies.items()),
        cited=[CitedDocument(document_id, titles[document_id], count) for document_id, count in top_cited],
        unanswered=sorted(unanswered.items(), key=lambda item: (-item[1], item[0]))[:TOP],
        waiting_since=waiting_since,
    )
