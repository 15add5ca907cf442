"""Student records: import files, look up, replace and delete by phone.

The canonical phone is a student's key: a row or request for a phone that
already exists replaces that student's record (name, email, external id and
attributes), so importing the same file twice changes nothing.
"""

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.errors import InvalidInput, NotFound, UnsupportedMediaType
from bedel.phones import InvalidPhone, normalize_phone
from bedel.students.columns import column_warnings, read_columns
from bedel.students.fields import FieldCatalog, load_field_catalog
from bedel.students.models import Student
from bedel.students.parsing import (
    SAMPLE_SIZE,
    XLS_MESSAGE,
    ImportFormat,
    format_from_content_type,
    format_from_name,
    parse_students,
)
from bedel.students.repository import StudentRepository
from bedel.students.schemas import FieldsReport, ImportReport, StudentUpdate

FORMATS_HINT = "use .csv, .xlsx (Excel), .json or .jsonl"
# Students whose columns `read_loaded_columns` reads: the list's columns, without reading 100,000 records.
SAMPLED_STUDENTS = 1000
SEARCH_LIMIT = 50


def upload_format(filename: str, content_type: str | None) -> ImportFormat:
    """The format of an uploaded file, by its name or else its content type; 415 naming the fix."""
    if PurePath(filename).suffix.lower() == ".xls":
        raise UnsupportedMediaType(XLS_MESSAGE, field="file")
    file_format = format_from_name(filename) or format_from_content_type(content_type)
    if file_format is None:
        raise UnsupportedMediaType(f"send a student list: {FORMATS_HINT}", field="file")
    return file_format


class InvalidPhoneError(InvalidInput):
    code = "invalid_phone"


async def import_students(
    session: AsyncSession,
    data: bytes,
    filename_or_format: str | ImportFormat,
    *,
    catalog: FieldCatalog | None = None,
) -> ImportReport:
    """Load students from a CSV, Excel (.xlsx, first sheet), JSON (array of objects) or JSONL file.

    A file that cannot be read as a whole (not UTF-8, no phone column, broken
    JSON, empty, unknown format) raises `InvalidInput` and changes nothing.
    Otherwise every good row is upserted by canonical phone and every bad one
    is reported by line (or JSON array item). A phone repeated in the file
    keeps its last row, as if the rows were imported one by one; the earlier
    rows are reported. The report says how each column was understood and
    warns about those nothing understood. Flushes, never commits.
    """
    file_format = format_from_name(filename_or_format)
    if file_format is None:
        if PurePath(filename_or_format).suffix.lower() == ".xls":
            raise InvalidInput(XLS_MESSAGE, field="file")
        raise InvalidInput(f"unknown file format '{filename_or_format}': {FORMATS_HINT}", field="file")
    catalog = catalog or load_field_catalog()
    # Parsing 100k rows takes seconds of CPU: keep the event loop free meanwhile.
    parsed = await asyncio.to_thread(parse_students, data, file_format, catalog)
    repository = StudentRepository.from_session(session)
    created = await repository.upsert_many(list(parsed.rows.values()))
    readings = read_columns(catalog, parsed.filled, parsed.samples)
    return ImportReport(
        created=created,
        updated=len(parsed.rows) - created,
        errors=parsed.errors,
        columns=readings,
        warnings=column_warnings(readings),
    )


async def read_loaded_columns(session: AsyncSession, catalog: FieldCatalog) -> FieldsReport:
    """How the columns of the list in the database are understood, read from the students loaded last."""
    repository = StudentRepository.from_session(session)
    counts = await repository.count_fields()
    sample = await repository.recent_attributes(SAMPLED_STUDENTS)
    filled: dict[str, int] = {}
    values: dict[str, list[Any]] = {}
    for attributes in sample:
        for column, value in attributes.items():
            filled[column] = filled.get(column, 0) + 1
            if len(kept := values.setdefault(column, [])) < SAMPLE_SIZE:
                kept.append(value)
    # The fullest columns first, then by name: PostgreSQL's JSONB keeps no column order.
    ordered = dict(sorted(filled.items(), key=lambda item: (-item[1], item[0].casefold())))
    readings = read_columns(catalog, ordered, values)
    return FieldsReport(
        students=counts.pop("students"),
        sampled=len(sample),
        record_fields=counts,
        columns=readings,
        warnings=column_warnings(readings),
    )


async def search_students(session: AsyncSession, text: str) -> Sequence[Student]:
    """Students by name, matrícula, email or phone (in any shape); without words, those loaded last."""
    repository = StudentRepository.from_session(session)
    text = text.strip()
    if not text:
        return await repository.list_recent(SEARCH_LIMIT)
    found = list(await repository.search(text, SEARCH_LIMIT))
    try:
        by_phone = await repository.get_by_phone(normalize_phone(text))
    except InvalidPhone:
        by_phone = None
    if by_phone is not None and by_phone not in found:
        found.insert(0, by_phone)
    return found


async def get_student(session: AsyncSession, phone: str) -> Student:
    student = await find_student(session, phone)
    if student is None:
        raise NotFound(f"no student has the phone {canonical_phone(phone)}", field="phone")
    return student


def phones_matching(text: str) -> Select[str]:
    """The phones of students named like `text` (a part of the name) or with `text` as their
    external id (matrícula), as a subquery for a conversation search."""
    return StudentRepository.phones_matching(text)


async def names_of(session: AsyncSession, phones: Sequence[str]) -> dict[str, str | None]:
    """The name on record for each of these phones that has a student."""
    return await StudentRepository.from_session(session).names_of(phones)


async def find_student(session: AsyncSession, phone: str) -> Student | None:
    return await StudentRepository.from_session(session).get_by_phone(canonical_phone(phone))


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
    values = {"phone": canonical, **update.model_dump(include={"name", "email", "external_id", "attributes"})}
    await repository.replace_keys([(student.id, values)])
    return student, created


async def edit_student(
    session: AsyncSession,
    phone: str,
    identity: Mapping[str, str],
    attributes: Mapping[str, str],
) -> Student:
    """Change a student's record from a form: every value comes as text, and a field that held a
    number keeps a number when the new text is one; an emptied field is removed. The phone, the
    student's key, stays."""
    student = await get_student(session, phone)
    values = {key: _typed(text.strip(), student.attributes.get(key)) for key, text in attributes.items()}
    try:
        update = StudentUpdate(
            name=identity.get("name", "").strip() or None,
            email=identity.get("email", "").strip() or None,
            external_id=identity.get("external_id", "").strip() or None,
            attributes={key: value for key, value in values.items() if value is not None},
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or None
        raise InvalidInput(f"{field}: {error['msg']}" if field else error["msg"], field=field) from None
    student, _ = await replace_student(session, phone, update)
    return student


def _typed(text: str, before: Any) -> Any:
    if not text:
        return None
    if isinstance(before, int | float) and not isinstance(before, bool):
        try:
            number = float(text.replace(",", ""))
        except ValueError:
            return text
        return int(number) if number.is_integer() else number
    return text


async def delete_student(session: AsyncSession, phone: str) -> None:
    student = await get_student(session, phone)
    await StudentRepository.from_session(session).delete(student)


def canonical_phone(phone: str) -> str:
    """The canonical key of a phone given by a caller; `InvalidPhoneError` (422) when it is none."""
    try:
        return normalize_phone(phone)
    except InvalidPhone as exc:
        raise InvalidPhoneError(str(exc), field="phone") from None
