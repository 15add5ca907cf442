"""A student's rights over their data (ARCO): a copy of everything held about them, and its erasure.

Business rules: both walk the one list of holdings (`holdings.HOLDINGS`), so what is
exported is what is erased. Erasure happens in the caller's transaction, all or
nothing, and leaves a receipt that names who asked and how much went, never the
student. Both are audited; an erasure's entry names its receipt, not the student. A phone
nothing is held about is a 404, for both, and records nothing.
"""

from collections.abc import Sequence

from pydantic_core import to_jsonable_python
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bedel.audit import service as audit
from bedel.audit.models import Action
from bedel.auth import Caller
from bedel.db import utcnow
from bedel.errors import NotFound
from bedel.privacy.holdings import HOLDINGS, Subject
from bedel.privacy.models import ErasureRequest
from bedel.privacy.repository import PrivacyRepository, empty_write_ahead_log
from bedel.privacy.schemas import StudentExport
from bedel.students.service import canonical_phone


async def export_student(session: AsyncSession, phone: str, caller: Caller) -> StudentExport:
    """Every row held about the student, by kind; file bytes are listed, not copied."""
    repository = PrivacyRepository.from_session(session)
    subject = await _subject(repository, phone)
    holdings = {holding.name: await repository.rows(holding, subject) for holding in HOLDINGS}
    if not any(holdings.values()):
        raise _nothing_held(subject)
    await audit.record(session, caller, Action.student_export, phone=subject.phone)
    return StudentExport(phone=subject.phone, exported_at=utcnow(), holdings=to_jsonable_python(holdings))


async def erase_student(session: AsyncSession, phone: str, caller: Caller) -> ErasureRequest:
    """Remove every row held about the student and record the erasure; flushed, committed by the caller."""
    repository = PrivacyRepository.from_session(session)
    subject = await _subject(repository, phone)
    await repository.forget_activity(subject)
    removed = {holding.name: await repository.erase(holding, subject) for holding in reversed(HOLDINGS)}
    if not any(removed.values()):
        raise _nothing_held(subject)
    await repository.drop_search_terms()
    requested_by = f"{caller.kind}:{caller.name}"
    erasure = await repository.record_erasure(requested_by, {name: count for name, count in removed.items() if count})
    await audit.record(session, caller, Action.student_erase, target=str(erasure.id))
    return erasure


async def scrub_after_erasure(engine: AsyncEngine) -> None:
    """Once an erasure is committed: leave no copy of the erased rows in the database's own files."""
    await empty_write_ahead_log(engine)


async def list_erasures(session: AsyncSession, limit: int, offset: int) -> Sequence[ErasureRequest]:
    """The erasures done, latest first."""
    return await PrivacyRepository.from_session(session).erasures(limit, offset)


async def _subject(repository: PrivacyRepository, phone: str) -> Subject:
    return await repository.subject(canonical_phone(phone))


def _nothing_held(subject: Subject) -> NotFound:
    return NotFound(f"nothing is held about the phone {subject.phone}", field="phone")
