"""What the conversations amounted to over a period, for the dashboard: the SQL, read in a few grouped
statements (a month is hundreds of thousands of messages; none is loaded one by one). A past day's
figures are read from its messages once, by a job shortly after the day ends (chat/tasks.py), and kept
in the activity_* tables, small rows summed over the period in SQL; a view reads from the messages only
the days not kept yet (today, and a day whose conversation was just deleted until the job keeps it again).

The way other packages read these figures (as they reach threads through `threads.py`).
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from itertools import groupby
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    case,
    cast,
    delete,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bedel.chat.models import (
    ActivityCitation,
    ActivityDay,
    ActivityHour,
    ActivityLatency,
    ActivityUnanswered,
    Message,
    Role,
    Thread,
    ThreadStatus,
)
from bedel.db import as_utc, conflict_insert
from bedel.jobs.repository import JobRepository

# What an answer says when neither the documents nor the record had it: the instructions ask the
# model for these words and the offline engine writes them (texts' unknown_answer), in both languages.
NO_INFORMATION = ("no tengo esa información", "i don't have that information")
# Questions from the HTTP API carry no channel message id.
API_CHANNEL = "api"
TOP = 10
LATENCY_STEP_MS = 10
# The questions that found nothing kept per day, most asked first: what to write next is among a day's
# most asked, and keeping every one (hundreds a day, each its own words) made a month slow to sum.
KEPT_UNANSWERED = 100
# A day's figures are kept once it has been over this long: a message stamped just before midnight may
# still be committing on another replica.
SETTLED = timedelta(minutes=10)
# The job that keeps them (chat/tasks.py).
KEEP_JOB = "activity.keep"


class Outcome(StrEnum):
    documents = "documents"  # answered citing the institution's documents
    other = "other"  # answered without documents: from the student's record, or the conversation itself
    unknown = "unknown"  # "no tengo esa información"
    handoff = "handoff"  # a person was asked for (or taken)


@dataclass(frozen=True)
class QuestionCount:
    """Questions of one channel in one UTC hour."""

    hour: datetime
    channel: str
    messages: int


@dataclass(frozen=True)
class AnswerCount:
    """Answers of one outcome and model over the period."""

    outcome: Outcome
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
    questions: list[QuestionCount]
    answers: list[AnswerCount]
    # (answer time in ms, how many answers took it), shortest first.
    latencies: list[tuple[int, int]]
    cited: list[CitedDocument]
    # The questions answered "no tengo esa información", most asked first (lowercased).
    unanswered: list[tuple[str, int]]
    # When each conversation now waiting for a person was handed over, longest waiting first.
    waiting_since: list[datetime]


# Moments from the first up to (not including) the second, UTC.
Ranges = list[tuple[datetime, datetime]]


@dataclass(frozen=True)
class Split:
    """A period as the days whose figures are kept (runs of days, the second not included) and the
    moments read from the messages."""

    kept: list[tuple[date, date]]
    live: Ranges


class ActivityRepository:
    """Each figure is one grouped statement over a period's messages, by UTC day: run once to keep a past
    day's figures (`keep_days`), and run for the days not kept yet (today) beside what was kept."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    @classmethod
    def from_session(cls, session: AsyncSession) -> "ActivityRepository":
        return cls(session)

    async def keep_days(self, days: list[date]) -> None:
        """Read and keep the figures of those of `days` (in order) not kept yet. Claiming a day first means that
        two runs of the job at once keep it once: the second waits, then skips it."""
        kept = set(
            await self.session.scalars(
                select(ActivityDay.day).where(_kept(ActivityDay, [(days[0], days[-1] + timedelta(days=1))]))
            )
        )
        missing = [day for day in days if day not in kept]
        if not missing:
            return
        claimed = await self.session.scalars(
            conflict_insert(self.session, ActivityDay)
            .values([{"day": day} for day in missing])
            .on_conflict_do_nothing(index_elements=["day"])
            .returning(ActivityDay.day)
        )
        for first, last in _runs(sorted(claimed)):
            ranges = [(_midnight(first), _midnight(last + timedelta(days=1)))]
            for table, query in (
                (ActivityHour, self._hours(ranges)),
                (ActivityLatency, self._latencies(ranges)),
                (ActivityCitation, self._cited(ranges)),
                (ActivityUnanswered, self._most_unanswered(ranges)),
            ):
                columns = [column.name for column in query.selected_columns]
                await self.session.execute(insert(table).from_select(columns, query))

    async def days_to_keep(self, settled: date) -> list[date]:
        """The days from the first message's up to (not including) `settled` whose figures are not kept."""
        first = await self.session.scalar(select(func.min(Message.created_at)))
        if first is None:
            return []
        start = as_utc(first).date()
        past = [start + timedelta(days=n) for n in range((settled - start).days)]
        return sorted(set(past) - await self.kept_days(start, settled))

    async def kept_days(self, start: date, end: date) -> set[date]:
        """The days from `start` up to (not including) `end` whose figures are kept."""
        return set(await self.session.scalars(select(ActivityDay.day).where(_kept(ActivityDay, [(start, end)]))))

    async def forget_thread(self, thread_id: uuid.UUID) -> None:
        """Drop the kept figures of every day the conversation has messages on (before it is deleted), and
        have the job keep those days again, without it, once this transaction commits."""
        days = select(self._day(Message.created_at)).where(Message.thread_id == thread_id).distinct()
        forgotten = await self.session.execute(delete(ActivityDay).where(ActivityDay.day.in_(days)))
        if forgotten.rowcount:  # type: ignore[attr-defined]
            await JobRepository.from_session(self.session).enqueue(
                KEEP_JOB, {}, key=KEEP_JOB, dedupe_key=f"{KEEP_JOB}:{thread_id}"
            )

    async def forget_days_before(self, day: date) -> None:
        """Drop the kept figures of the days before `day` (retention): what is shown of them is read
        again from the messages still held, so no question outlives its conversation there."""
        await self.session.execute(delete(ActivityDay).where(ActivityDay.day < day))

    async def hours(self, split: "Split") -> tuple[list[QuestionCount], list[AnswerCount]]:
        """Questions by hour and channel, and answers by outcome and model: the kept days' rows of
        `split.kept` and the messages of `split.live`."""
        stored = select(
            ActivityHour.day,
            ActivityHour.hour,
            ActivityHour.role,
            ActivityHour.channel,
            ActivityHour.outcome,
            ActivityHour.model,
            ActivityHour.messages,
            ActivityHour.input_tokens,
            ActivityHour.output_tokens,
        ).where(_kept(ActivityHour, split.kept))
        both = union_all(stored, self._hours(split.live)).subquery()
        # One statement, summed in SQL: questions keep their hour, answers are summed over the period
        # (a month is a few thousand rows, not the tens of thousands stored).
        asked = both.c.role == Role.user
        day, hour = case((asked, both.c.day)), case((asked, both.c.hour))
        rows = await self.session.execute(
            select(
                both.c.role,
                day,
                hour,
                both.c.channel,
                both.c.outcome,
                both.c.model,
                func.sum(both.c.messages),
                func.sum(both.c.input_tokens),
                func.sum(both.c.output_tokens),
            ).group_by(both.c.role, day, hour, both.c.channel, both.c.outcome, both.c.model)
        )
        questions, answers = [], []
        for role, on, at, channel, outcome, model, count, tokens_in, tokens_out in rows:
            if role == Role.user:
                moment = _midnight(_day_value(on)) + timedelta(hours=int(at))
                questions.append(QuestionCount(moment, str(channel), int(count)))
            else:
                answers.append(AnswerCount(Outcome(outcome), model, int(count), int(tokens_in), int(tokens_out)))
        return questions, answers

    async def latencies(self, split: "Split") -> list[tuple[int, int]]:
        """(answer time to 10 ms, answers), shortest first: a month's percentiles from a few hundred rows."""
        stored = select(ActivityLatency.day, ActivityLatency.latency_ms, ActivityLatency.answers).where(
            _kept(ActivityLatency, split.kept)
        )
        both = union_all(stored, self._latencies(split.live)).subquery()
        latency, answers = both.c[1], both.c[2]
        rows = await self.session.execute(select(latency, func.sum(answers)).group_by(latency).order_by(latency))
        return [(int(value), int(count)) for value, count in rows]

    async def cited(self, split: "Split") -> list[CitedDocument]:
        """The documents cited by the most answers, most first."""
        stored = select(
            ActivityCitation.day, ActivityCitation.document_id, ActivityCitation.title, ActivityCitation.answers
        ).where(_kept(ActivityCitation, split.kept))
        both = union_all(stored, self._cited(split.live)).subquery()
        document_id, title, answers = both.c[1], both.c[2], both.c[3]
        total = func.sum(answers)
        rows = await self.session.execute(
            select(document_id, func.max(title), total)
            .group_by(document_id)
            .order_by(total.desc(), document_id)
            .limit(TOP)
        )
        return [CitedDocument(str(found), str(name or ""), int(count)) for found, name, count in rows]

    async def unanswered(self, split: "Split") -> list[tuple[str, int]]:
        """The questions answered "no tengo esa información" most often, most first."""
        stored = select(ActivityUnanswered.day, ActivityUnanswered.question, ActivityUnanswered.asked).where(
            _kept(ActivityUnanswered, split.kept)
        )
        both = union_all(stored, self._unanswered(split.live)).subquery()
        question, asked = both.c[1], both.c[2]
        total = func.sum(asked)
        rows = await self.session.execute(
            select(question, total).group_by(question).order_by(total.desc(), question).limit(TOP)
        )
        return [(str(words), int(count)) for words, count in rows]

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

    def _hours(self, ranges: Ranges) -> Select[Any]:
        day, hour = self._day(Message.created_at), self._hour(Message.created_at)
        channel = case((Message.role == Role.user, self._channel(Message.source_id)))
        outcome = case((Message.role == Role.assistant, self._outcome(Message)))
        return (
            select(
                day.label("day"),
                hour.label("hour"),
                Message.role.label("role"),
                channel.label("channel"),
                outcome.label("outcome"),
                Message.model.label("model"),
                func.count().label("messages"),
                func.coalesce(func.sum(Message.input_tokens), 0).label("input_tokens"),
                func.coalesce(func.sum(Message.output_tokens), 0).label("output_tokens"),
            )
            .where(_within(Message, ranges), or_(Message.role == Role.user, _answer(Message)))
            .group_by(day, hour, Message.role, channel, outcome, Message.model)
        )

    def _latencies(self, ranges: Ranges) -> Select[Any]:
        day = self._day(Message.created_at)
        rounded = Message.latency_ms // LATENCY_STEP_MS * LATENCY_STEP_MS
        return (
            select(day.label("day"), rounded.label("latency_ms"), func.count().label("answers"))
            .where(_within(Message, ranges), _answer(Message), Message.latency_ms.is_not(None))
            .group_by(day, rounded)
        )

    def _cited(self, ranges: Ranges) -> Select[Any]:
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
        return (
            select(
                day.label("day"),
                document_id.label("document_id"),
                func.max(title).label("title"),
                func.count(func.distinct(Message.id)).label("answers"),
            )
            .select_from(Message)
            .join(source, literal(True))
            .where(_within(Message, ranges), _answer(Message))
            .group_by(day, document_id)
        )

    def _unanswered(self, ranges: Ranges) -> Select[Any]:
        """The question just before each "no tengo esa información" answer, grouped as written."""
        answer, question = aliased(Message), aliased(Message)
        text = func.lower(func.trim(question.content))
        day = self._day(answer.created_at)
        return (
            select(day.label("day"), text.label("question"), func.count().label("asked"))
            .select_from(answer)
            .join(
                question,
                and_(
                    question.thread_id == answer.thread_id,
                    question.seq == answer.seq - 1,
                    question.role == Role.user,
                ),
            )
            .where(_within(answer, ranges), _answer(answer), self._outcome(answer) == Outcome.unknown)
            .group_by(day, text)
        )

    def _most_unanswered(self, ranges: Ranges) -> Select[Any]:
        """Each day's `KEPT_UNANSWERED` questions answered "no tengo esa información" most often."""
        grouped = self._unanswered(ranges).subquery()
        rank = func.row_number().over(partition_by=grouped.c.day, order_by=(grouped.c.asked.desc(), grouped.c.question))
        ranked = select(grouped, rank.label("rank")).subquery()
        return select(ranked.c.day, ranked.c.question, ranked.c.asked).where(ranked.c.rank <= KEPT_UNANSWERED)

    def _day(self, column: Any) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            return func.date(func.timezone("UTC", column))
        return func.date(column)

    def _hour(self, column: Any) -> ColumnElement[Any]:
        """The hour of the day (0-23), in UTC whatever the session's time zone."""
        if self.dialect == "postgresql":
            return cast(func.extract("hour", func.timezone("UTC", column)), Integer)
        return cast(func.strftime("%H", column), Integer)

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


def _within(message: Any, ranges: Ranges) -> ColumnElement[bool]:
    return or_(false(), *(and_(message.created_at >= start, message.created_at < end) for start, end in ranges))


def _answer(message: Any) -> ColumnElement[bool]:
    """An answer of the assistant's (what a campaign sent into the thread has no model)."""
    return and_(message.role == Role.assistant, message.model.is_not(None))


def _kept(table: Any, runs: list[tuple[date, date]]) -> ColumnElement[bool]:
    return or_(false(), *(and_(table.day >= first, table.day < end) for first, end in runs))


def _day_value(value: Any) -> date:
    # PostgreSQL gives a date, SQLite text.
    return value if isinstance(value, date) else date.fromisoformat(value)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def _runs(days: list[date]) -> Iterator[tuple[date, date]]:
    """Consecutive days as (first, last) pairs, from sorted days."""
    for _, run in groupby(enumerate(days), key=lambda item: item[1] - timedelta(days=item[0])):
        found = [day for _, day in run]
        yield found[0], found[-1]


def settled_day(now: datetime) -> date:
    """The first day not over for `SETTLED` yet: every day before it can be kept."""
    return (now - SETTLED).date()


async def chat_activity(session: AsyncSession, start: datetime, end: datetime, now: datetime) -> ChatActivity:
    """Questions, answers, citations from `start` up to (not including) `end` (both midnights, UTC), and
    the handoffs waiting now: the kept days' figures, and the other days' (today) read from the messages."""
    repository = ActivityRepository.from_session(session)
    split = await _split(repository, start.date(), end.date(), settled_day(now))
    questions, answers = await repository.hours(split)
    return ChatActivity(
        questions=questions,
        answers=answers,
        latencies=await repository.latencies(split),
        cited=await repository.cited(split),
        unanswered=await repository.unanswered(split),
        waiting_since=await repository.waiting_since(),
    )


async def _split(repository: ActivityRepository, start: date, end: date, settled: date) -> Split:
    """The days from `start` up to `end` whose figures are kept, and the others as moments to read."""
    kept = await repository.kept_days(start, min(end, settled)) if start < settled else set()
    days = [start + timedelta(days=n) for n in range((end - start).days)]
    return Split(
        kept=[(first, last + timedelta(days=1)) for first, last in _runs(sorted(kept))],
        live=[
            (_midnight(first), _midnight(last + timedelta(days=1)))
            for first, last in _runs([day for day in days if day not in kept])
        ],
    )
