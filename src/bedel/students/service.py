"""Student records: import files, look up, replace and delete by phone.

The canonical phone is a student's key: a row or request for a phone that
already exists replaces that student's record (name, email, external id and
attributes), so importing the same file twice changes nothing.
"""

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession

from bedel.errors import InvalidInput, NotFound
from bedel.phones import InvalidPhone, normalize_phone
from bedel.students.fields import FieldCatalog, load_field_catalog
from bedel.students.models import Student
from bedel.students.parsing import ImportFormat, format_from_name, parse_students
from bedel.students.repository import StudentRepository
from bedel.students.schemas import ImportReport, StudentUpdate


class InvalidPhoneError(InvalidInput):
    code = "invalid_phone"


async def import_students(
    session: AsyncSession,
    data: bytes,
    filename_or_format: str | ImportFormat,
    *,
    catalog: FieldCatalog | None = None,
) -> ImportReport:
    """Load students from a CSV, JSON (array of objects) or JSONL file.

    A file that cannot be read as a whole (not UTF-8, no phone column, broken
    JSON, empty, unknown format) raises `InvalidInput` and changes nothing.
    Otherwise every good row is upserted by canonical phone and every bad one
    is reported by line (or JSON array item). A phone repeated in the file
    keeps its last row, as if the rows were imported one by one; the earlier
    rows are reported. Flushes, never commits.
    """
    file_format = format_from_name(filename_or_format)
    if file_format is None:
        raise InvalidInput(f"unknown file format '{filename_or_format}': use .csv, .json or .jsonl", field="file")
    # Parsing 100k rows takes seconds of CPU: keep the event loop free meanwhile.
    parsed = await asyncio.to_thread(parse_students, data, file_format, catalog or load_field_catalog())
    repository = StudentRepository.from_session(session)
    created = await repository.upsert_many(list(parsed.rows.values()))
    return ImportReport(created=created, updated=len(parsed.rows) - created, errors=parsed.errors)


async def get_student(session: AsyncSession, phone: str) -> Student:
    canonical = canonical_phone(phone)
    student = await StudentRepository.from_session(session).get_by_phone(canonical)
    if student is None:
        raise NotFound(f"no student has the phone {canonical}", field="phone")
    return student


async def replace_student(session: AsyncSession, phone: str, update: StudentUpdate) -> tuple[Student, bool]:
    """Create or replace the record of the student with this phone; True when created."""
    canonical = canonical_phone(phone)
    repository = StudentRepository.from_session(session)
    student = await repository.get_by_phone(canonical)
    created = student is None
    if student is None:
        student = Student(phone=canonical)
        repository.add(student)
    student.name = update.name
    student.email = update.email
    student.external_id = update.external_id
    student.attributes = dict(update.attributes)
    await session.flush()
    return student, created


async def delete_student(session: AsyncSession, phone: str) -> None:
    student = await get_student(session, phone)
    await StudentRepository.from_session(session).delete(student)


async def find_students(session: AsyncSession, text: str, limit: int = 20) -> list[Student]:
    """Students to pick by name, matrícula or part of the phone; nothing for a blank search."""
    text = text.strip()
    if not text:
        return []
    return list(await StudentRepository.from_session(session).search(text, limit))


def canonical_phone(phone: str) -> str:
    """The canonical key of a phone given by a caller; `InvalidPhoneError` (422) when it is none."""
    try:
        return normalize_phone(phone)
    except InvalidPhone as exc:
        raise InvalidPhoneError(str(exc), field="phone") from None
