"""The dashboard (admins only): whether the assistant helped, over a chosen period, as charts."""

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Annotated

from fastapi import Query, Request, Response

from bedel.chat.activity import chat_activity
from bedel.console.auth import AdminOnly, console_router
from bedel.console.catalogue import strings
from bedel.console.charts import Period, build_dashboard
from bedel.console.rendering import page_language, render
from bedel.dependencies import DBSession, get_state
from bedel.feedback.service import feedback_between
from bedel.llm.prices import model_prices

router = console_router()

DEFAULT_DAYS = 7
PRESETS = (7, 30, 90)
MAX_DAYS = 366


@router.get("/dashboard")
async def dashboard_page(
    request: Request,
    session: DBSession,
    admin: AdminOnly,
    start: Annotated[date | None, Query()] = None,
    end: Annotated[date | None, Query()] = None,
) -> Response:
    """Dates in UTC: a day is a UTC day, as the feedback report counts them."""
    state = get_state(request)
    now = state.clock()
    words = strings(page_language(request))
    period, error = _period(start, end, now.date(), words)
    activity = await chat_activity(session, period.start, period.end, now)
    feedback = await feedback_between(session, period.start, period.end)
    dashboard = build_dashboard(period, activity, feedback, model_prices(state.settings.model_prices), words, now)
    presets = [(days, (now.date() - timedelta(days=days - 1)).isoformat()) for days in PRESETS]
    return render(
        request,
        "dashboard.html",
        user=admin,
        status_code=422 if error else 200,
        period=period,
        presets=presets,
        today=now.date().isoformat(),
        dashboard=dashboard,
        chart_data=[chart.data() for chart in dashboard.charts],
        error=error,
    )


def _period(start: date | None, end: date | None, today: date, words: Mapping[str, str]) -> tuple[Period, str | None]:
    """The chosen days, or the last week with the reason when the choice cannot be shown."""
    last = end or today
    first = start or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last or (last - first).days >= MAX_DAYS:
        fallback = Period(today - timedelta(days=DEFAULT_DAYS - 1), today)
        return fallback, words["dashboard_bad_period"].format(days=MAX_DAYS)
    return Period(first, last), None
