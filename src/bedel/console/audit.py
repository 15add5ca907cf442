"""The audit log (admins only): who read or changed what, newest first; nothing here changes it."""

from typing import Annotated

from fastapi import Query, Request, Response

from bedel.audit import service as audit
from bedel.console.auth import AdminOnly, console_router
from bedel.console.rendering import render
from bedel.dependencies import DBSession
from bedel.paging import MAX_OFFSET

router = console_router()

PAGE = "/console/audit"
LISTED = 50


@router.get("/audit")
async def audit_page(
    request: Request, session: DBSession, admin: AdminOnly, offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0
) -> Response:
    # One more than shown: whether there is an older page.
    found = await audit.list_entries(session, limit=LISTED + 1, offset=offset)
    return render(
        request,
        "audit.html",
        user=admin,
        here=PAGE,
        entries=found[:LISTED],
        offset=offset,
        listed=LISTED,
        more=len(found) > LISTED,
    )
