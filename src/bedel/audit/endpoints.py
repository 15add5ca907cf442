"""The audit log over HTTP, for admins: read only, there is no route that changes it."""

from typing import Annotated

from fastapi import APIRouter, Query

from bedel.audit import service
from bedel.audit.models import Action
from bedel.audit.schemas import AuditList
from bedel.auth import StaffOnly
from bedel.dependencies import DBSession
from bedel.errors import InvalidInput
from bedel.paging import MAX_OFFSET
from bedel.phones import InvalidPhone

router = APIRouter(prefix="/audit", tags=["audit"], dependencies=[StaffOnly])


@router.get("", response_model=AuditList)
async def list_audit_entries(
    session: DBSession,
    phone: Annotated[str | None, Query(description="Only the entries about this student.")] = None,
    action: Action | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> AuditList:
    """Who read or changed what, newest first."""
    try:
        items = await service.list_entries(session, phone=phone, action=action, limit=limit, offset=offset)
    except InvalidPhone as exc:
        raise InvalidInput(str(exc), field="phone") from None
    return AuditList(items=items)
