"""Inbox (agents and admins): the conversations waiting for a person, the longest waiting first,
a page at a time, kept current without reloading."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.chat import threads
from bedel.console.auth import AnyStaff, console_router
from bedel.console.live import changes_stream
from bedel.console.rendering import render
from bedel.dependencies import DBSession, get_state
from bedel.students import service as students
from bedel.users import service as users

router = console_router()

# More waiting at once than a person answers in a sitting; the oldest come first, the rest on later pages.
PAGE_SIZE = 50
MAX_PAGE = 1000
Page = Annotated[int, Query(ge=1, le=MAX_PAGE)]


@router.get("/inbox")
async def inbox_page(request: Request, session: DBSession, user: AnyStaff, page: Page = 1) -> Response:
    # Read before the list, for the reason the conversation page does (see conversations._thread_page).
    version = await threads.inbox_version(session)
    context = await _waiting(request, session, page)
    return render(request, "inbox.html", user=user, version=version, **context)


@router.get("/inbox/list")
async def inbox_list(request: Request, session: DBSession, user: AnyStaff, page: Page = 1) -> Response:
    """One page of the list alone, fetched by the page when the stream says something changed."""
    return render(request, "inbox_list.html", user=user, **await _waiting(request, session, page))


@router.get("/inbox/events")
async def inbox_events(request: Request, user: AnyStaff, seen: Annotated[str, Query(max_length=100)] = "") -> Response:
    return changes_stream(request, threads.inbox_version, seen)


async def _waiting(request: Request, session: AsyncSession, page: int) -> dict[str, Any]:
    now = get_state(request).clock()
    offset = (page - 1) * PAGE_SIZE
    waiting = await threads.waiting_threads(session, limit=PAGE_SIZE, offset=offset)
    count = await threads.count_waiting(session)
    names = await students.names_of(session, [thread.phone for thread, _ in waiting])
    staff = {account.id: account.email for account in await users.list_users(session)}
    return {
        "rows": [
            {
                "thread": thread,
                "name": names.get(thread.phone),
                "waited": _waited(since, now),
                "since": since,
                "assignee": staff.get(thread.assigned_to) if thread.assigned_to else None,
            }
            for thread, since in waiting
        ],
        "now": now,
        "count": count,
        "page": page,
        "first": offset + 1,
        "more": count > offset + PAGE_SIZE,
    }


def _waited(since: datetime | None, now: datetime) -> tuple[int, int, int] | None:
    """Days, hours and minutes since `since`; None when nobody waits."""
    if since is None:
        return None
    minutes = max(0, int((now - since).total_seconds() // 60))
    return minutes // (24 * 60), minutes // 60 % 24, minutes % 60
