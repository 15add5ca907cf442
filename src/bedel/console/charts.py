"""The dashboard's figures as charts: each chart's data for the page's JSON block (drawn by
static/dashboard.js with Chart.js) and, for people who cannot see it, a sentence and a table."""

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from bedel.chat.activity import AnswerCount, ChatActivity, Outcome, QuestionCount
from bedel.feedback.schemas import DailyFeedback
from bedel.llm.prices import cost

ChartKind = Literal["bar", "doughnut", "matrix"]
# Answer times are grouped into these (upper bounds in ms) for the chart; the percentiles use every value.
LATENCY_BOUNDS = (1000, 2000, 5000, 10_000)
# Waits of open handoffs, upper bounds in minutes.
WAIT_BOUNDS = (15, 60, 240, 1440)
LABEL_CHARS = 60


@dataclass(frozen=True)
class Series:
    label: str
    values: list[float]


@dataclass(frozen=True)
class Chart:
    id: str
    kind: ChartKind
    labels: list[str]
    series: list[Series]
    # The text alternative: one sentence with what matters, shown under the chart and read by screen readers.
    summary: str
    stacked: bool = False
    horizontal: bool = False

    def data(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def empty(self) -> bool:
        """Nothing to draw: the page shows the sentence alone."""
        return not any(value for series in self.series for value in series.values)


@dataclass(frozen=True)
class Period:
    first: date
    last: date  # included

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=UTC)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


@dataclass
class Dashboard:
    charts: list[Chart] = field(default_factory=list)
    # The headline numbers, already written for the page.
    figures: dict[str, str] = field(default_factory=dict)


def percentile(histogram: Sequence[tuple[int, int]], share: float) -> int | None:
    """The nearest-rank percentile of values given as (value, how many), sorted by value."""
    total = sum(count for _, count in histogram)
    if total == 0:
        return None
    rank = max(1, math.ceil(share * total))
    seen = 0
    for value, count in histogram:
        seen += count
        if seen >= rank:
            return value
    return histogram[-1][0]


def build_dashboard(
    period: Period,
    activity: ChatActivity,
    feedback: Sequence[DailyFeedback],
    prices: Mapping[str, tuple[float, float]],
    words: Mapping[str, str],
    now: datetime,
) -> Dashboard:
    questions, answers = activity.questions, activity.answers
    dashboard = Dashboard()
    dashboard.charts = [
        _questions_per_day(period, questions, words),
        _outcomes(answers, words),
        _feedback(period, feedback, words),
        _answer_times(activity.latencies, words),
        _tokens(answers, prices, words),
        _busiest_hours(questions, words),
        _cited(activity, words),
        _unanswered(activity, words),
        _waits(activity.waiting_since, now, words),
    ]
    median, p95 = percentile(activity.latencies, 0.5), percentile(activity.latencies, 0.95)
    spent = _cost(answers, prices)
    dashboard.figures = {
        "questions": _number(sum(row.messages for row in questions)),
        "answers": _number(sum(row.messages for row in answers)),
        "median": _seconds(median, words),
        "p95": _seconds(p95, words),
        "cost": _money(spent, words),
        "waiting": _number(len(activity.waiting_since)),
    }
    return dashboard


def _questions_per_day(period: Period, questions: Sequence[QuestionCount], words: Mapping[str, str]) -> Chart:
    by_channel: dict[str, Counter[date]] = defaultdict(Counter)
    for row in questions:
        by_channel[row.channel][row.hour.date()] += row.messages
    days = period.days
    series = [
        Series(words.get(f"dashboard_channel_{channel}", channel), [float(counts[day]) for day in days])
        for channel, counts in sorted(by_channel.items())
    ]
    totals = Counter({day: sum(counts[day] for counts in by_channel.values()) for day in days})
    total = sum(totals.values())
    if total:
        busiest, most = totals.most_common(1)[0]
        summary = words["dashboard_per_day_summary"].format(
            total=_number(total), days=len(days), day=busiest.isoformat(), most=_number(most)
        )
    else:
        summary = words["dashboard_empty"]
    labels = [day.isoformat() for day in days]
    return Chart("per-day", "bar", labels, series, summary, stacked=True)


def _outcomes(answers: Sequence[AnswerCount], words: Mapping[str, str]) -> Chart:
    counts = Counter[Outcome]()
    for row in answers:
        counts[row.outcome] += row.messages
    order = [Outcome.documents, Outcome.other, Outcome.unknown, Outcome.handoff]
    labels = [words[f"dashboard_outcome_{outcome}"] for outcome in order]
    total = sum(counts.values())
    summary = (
        words["dashboard_outcomes_summary"].format(
            total=_number(total), **{outcome.value: _share(counts[outcome], total) for outcome in order}
        )
        if total
        else words["dashboard_empty"]
    )
    return Chart(
        "outcomes", "doughnut", labels, [Series(words["dashboard_answers"], [float(counts[o]) for o in order])], summary
    )


def _feedback(period: Period, feedback: Sequence[DailyFeedback], words: Mapping[str, str]) -> Chart:
    by_day = {row.day: row for row in feedback}
    days = period.days
    helpful = [float(by_day[day].helpful if day in by_day else 0) for day in days]
    unhelpful = [float(by_day[day].not_helpful if day in by_day else 0) for day in days]
    yes, no = int(sum(helpful)), int(sum(unhelpful))
    summary = (
        words["dashboard_feedback_summary"].format(
            helpful=_number(yes), not_helpful=_number(no), share=_share(yes, yes + no)
        )
        if yes + no
        else words["dashboard_empty"]
    )
    series = [Series(words["dashboard_helpful"], helpful), Series(words["dashboard_not_helpful"], unhelpful)]
    return Chart("feedback", "bar", [day.isoformat() for day in days], series, summary, stacked=True)


def _answer_times(latencies: Sequence[tuple[int, int]], words: Mapping[str, str]) -> Chart:
    counts = [0] * (len(LATENCY_BOUNDS) + 1)
    for latency, count in latencies:
        counts[next((n for n, bound in enumerate(LATENCY_BOUNDS) if latency < bound), len(LATENCY_BOUNDS))] += count
    labels = [words[f"dashboard_latency_{n}"] for n in range(len(counts))]
    median, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    summary = (
        words["dashboard_latency_summary"].format(median=_seconds(median, words), p95=_seconds(p95, words))
        if latencies
        else words["dashboard_empty"]
    )
    return Chart(
        "answer-times", "bar", labels, [Series(words["dashboard_answers"], [float(c) for c in counts])], summary
    )


def _tokens(
    answers: Sequence[AnswerCount], prices: Mapping[str, tuple[float, float]], words: Mapping[str, str]
) -> Chart:
    tokens_in: Counter[str] = Counter()
    tokens_out: Counter[str] = Counter()
    for row in answers:
        tokens_in[row.model or "?"] += row.input_tokens
        tokens_out[row.model or "?"] += row.output_tokens
    models = sorted(tokens_in, key=lambda model: -(tokens_in[model] + tokens_out[model]))
    labels = []
    for model in models:
        labels.append(f"{model} ({_money(cost(prices, model, tokens_in[model], tokens_out[model]), words)})")
    series = [
        Series(words["dashboard_tokens_in"], [float(tokens_in[model]) for model in models]),
        Series(words["dashboard_tokens_out"], [float(tokens_out[model]) for model in models]),
    ]
    summary = (
        words["dashboard_tokens_summary"].format(
            tokens=_number(sum(tokens_in.values()) + sum(tokens_out.values())), models="; ".join(labels)
        )
        if models
        else words["dashboard_empty"]
    )
    return Chart("tokens", "bar", labels, series, summary, stacked=True, horizontal=True)


def _busiest_hours(questions: Sequence[QuestionCount], words: Mapping[str, str]) -> Chart:
    grid = [[0.0] * 24 for _ in range(7)]
    for row in questions:
        grid[row.hour.weekday()][row.hour.hour] += row.messages
    weekdays = [words[f"dashboard_weekday_{n}"] for n in range(7)]
    busiest = max(((grid[d][h], d, h) for d in range(7) for h in range(24)), default=(0.0, 0, 0))
    summary = (
        words["dashboard_hours_summary"].format(
            day=weekdays[busiest[1]], hour=busiest[2], most=_number(int(busiest[0]))
        )
        if busiest[0]
        else words["dashboard_empty"]
    )
    labels = [f"{hour:02d} h" for hour in range(24)]
    return Chart("hours", "matrix", labels, [Series(weekdays[d], grid[d]) for d in range(7)], summary)


def _cited(activity: ChatActivity, words: Mapping[str, str]) -> Chart:
    labels = [_short(document.title or document.document_id) for document in activity.cited]
    values = [float(document.answers) for document in activity.cited]
    summary = (
        words["dashboard_cited_summary"].format(title=labels[0], most=_number(int(values[0])))
        if labels
        else words["dashboard_empty"]
    )
    return Chart("cited", "bar", labels, [Series(words["dashboard_answers"], values)], summary, horizontal=True)


def _unanswered(activity: ChatActivity, words: Mapping[str, str]) -> Chart:
    labels = [_short(question) for question, _ in activity.unanswered]
    values = [float(count) for _, count in activity.unanswered]
    summary = (
        words["dashboard_unanswered_summary"].format(question=labels[0], most=_number(int(values[0])))
        if labels
        else words["dashboard_unanswered_none"]
    )
    return Chart(
        "unanswered", "bar", labels, [Series(words["dashboard_times_asked"], values)], summary, horizontal=True
    )


def _waits(waiting_since: Sequence[datetime], now: datetime, words: Mapping[str, str]) -> Chart:
    counts = [0] * (len(WAIT_BOUNDS) + 1)
    for since in waiting_since:
        minutes = (now - since).total_seconds() / 60
        counts[next((n for n, bound in enumerate(WAIT_BOUNDS) if minutes < bound), len(WAIT_BOUNDS))] += 1
    labels = [words[f"dashboard_wait_{n}"] for n in range(len(counts))]
    if waiting_since:
        longest = round((now - waiting_since[0]).total_seconds() / 60)
        summary = words["dashboard_waits_summary"].format(n=len(waiting_since), minutes=_number(longest))
    else:
        summary = words["dashboard_waits_none"]
    series = [Series(words["dashboard_conversations"], [float(count) for count in counts])]
    return Chart("waits", "bar", labels, series, summary, horizontal=True)


def _cost(answers: Sequence[AnswerCount], prices: Mapping[str, tuple[float, float]]) -> float | None:
    costs = [cost(prices, row.model or "", row.input_tokens, row.output_tokens) for row in answers]
    priced = [value for value in costs if value is not None]
    return sum(priced) if priced else None


def _number(value: int) -> str:
    return f"{value:,}"


def _share(part: int, total: int) -> str:
    return f"{round(100 * part / total) if total else 0} %"


def _seconds(ms: int | None, words: Mapping[str, str]) -> str:
    if ms is None:
        return "—"
    return words["dashboard_ms"].format(ms=ms) if ms < 1000 else words["dashboard_seconds"].format(s=ms / 1000)


def _money(amount: float | None, words: Mapping[str, str]) -> str:
    if amount is None:
        return words["dashboard_no_price"]
    # Cents once it is a dollar or more; a cheap model's cost shows its first digits.
    return words["dashboard_money"].format(amount=f"{amount:,.2f}" if amount >= 1 else f"{amount:.4f}")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"
