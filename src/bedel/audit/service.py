"""Recording and reading the audit log.

Business rules: every staff read of a student's data and every change is recorded in the
transaction that does it, so a change that is rolled back leaves no entry and an entry is
never missing for a change that happened; an entry names the student only by canonical phone
and holds no secret and no message text; an erasure removes every entry about the student
but the erasure itself, which is kept without naming them.
"""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bedel.audit.models import Action, AuditEntry
from bedel.audit.repository import AuditRepository
from bedel.audit.schemas import AuditEntryOut
from bedel.auth import Caller
from bedel.db import Clock, utcnow
from bedel.phones import InvalidPhone, normalize_phone


async def record(
    session: AsyncSession,
    caller: Caller,
    action: Action,
    *,
    phone: str | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    clock: Clock = utcnow,
) -> None:
    """Record that `caller` did `action` (about the student of `phone`, on `target`)."""
    if action is Action.student_erase:
        # That an erasure happened is kept; whom it erased is not.
        phone = None
    entry = AuditEntry(
        at=clock(),
        actor_kind=caller.kind,
        actor_name=caller.name,
        actor_role=caller.role,
        address=caller.address,
        action=action,
        phone=_about(phone),
        target=target,
        detail=detail,
    )
    await AuditRepository.from_session(session).add(entry)


def _about(phone: str | None) -> str | None:
    """The student an entry is about, as their threads hold it: a phone, or the key of a contact
    not verified yet (not a phone, kept as it is)."""
    if phone is None:
        return None
    try:
        return normalize_phone(phone)
    except InvalidPhone:
        return phone


async def list_entries(
    session: AsyncSession, *, phone: str | None = None, action: Action | None = None, limit: int, offset: int
) -> list[AuditEntryOut]:
    """Newest first."""
    phone = normalize_phone(phone) if phone is not None else None
    entries = await AuditRepository.from_session(session).page(phone=phone, action=action, limit=limit, offset=offset)
    return [AuditEntryOut.model_validate(entry) for entry in entries]
