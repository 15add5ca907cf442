"""Students (admins only): import a list, see how its columns were understood, find, view,
edit and delete one student. The rules live in bedel.students.service, shared with the API
and the CLI."""

import re
from typing import Annotated, cast
from urllib.parse import quote, urlencode

from fastapi import File, Query, Request, Response, UploadFile

from bedel.audit import service as audit
from bedel.audit.models import Action
from bedel.console.auth import AdminOnly, console_caller, console_router
from bedel.console.catalogue import strings
from bedel.console.rendering import page_language, render, see_other
from bedel.dependencies import DBSession, get_state
from bedel.errors import BedelError
from bedel.students import service
from bedel.students.endpoints import StudentsState
from bedel.students.fields import FieldCatalog
from bedel.students.models import Student
from bedel.students.schemas import ImportReport
from bedel.users.models import StaffUser

router = console_router()

PAGE = "/console/students"
# Form fields of the edit form: the record's own, and one per column ("field.<column>").
IDENTITY_FIELDS = ("name", "email", "external_id")
COLUMN_PREFIX = "field."
_CANONICAL_PHONE = re.compile(r"\+[0-9]{8,15}")


def _catalog(request: Request) -> FieldCatalog:
    return cast(StudentsState, get_state(request)).catalog


def student_path(phone: str) -> str:
    return f"{PAGE}/{quote(phone, safe='')}"


@router.get("/students")
async def students_page(
    request: Request,
    session: DBSession,
    admin: AdminOnly,
    q: Annotated[str, Query(max_length=200)] = "",
    deleted: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    words = strings(page_language(request))
    notice = None
    # The notice comes back in the address: only a phone's shape that no student holds now.
    if _CANONICAL_PHONE.fullmatch(deleted) and await service.find_student(session, deleted) is None:
        notice = words["students_notice_deleted"].format(phone=deleted)
    return await _list(request, session, admin, query=q, notice=notice)


@router.post("/students/import")
async def import_students(
    request: Request,
    session: DBSession,
    admin: AdminOnly,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    if file is None or not file.filename:
        words = strings(page_language(request))
        return await _list(request, session, admin, error=words["students_no_file"], status_code=422)
    try:
        file_format = service.upload_format(file.filename, file.content_type)
        report = await service.import_students(session, await file.read(), file_format, catalog=_catalog(request))
    except BedelError as exc:
        return await _list(request, session, admin, error=exc.message, status_code=exc.status, filename=file.filename)
    counts = {"created": report.created, "updated": report.updated, "rejected": len(report.errors)}
    caller = console_caller(request, admin)
    await audit.record(session, caller, Action.students_import, target=file.filename[:254], detail=counts)
    return await _list(request, session, admin, report=report, filename=file.filename)


@router.get("/students/fields")
async def fields_page(request: Request, session: DBSession, admin: AdminOnly) -> Response:
    report = await service.read_loaded_columns(session, _catalog(request))
    return render(request, "student_fields.html", user=admin, report=report)


@router.get("/students/{phone}")
async def student_page(
    request: Request,
    session: DBSession,
    admin: AdminOnly,
    phone: str,
    saved: Annotated[bool, Query()] = False,
) -> Response:
    student = await service.get_student(session, phone)
    await audit.record(session, console_caller(request, admin), Action.student_read, phone=student.phone)
    words = strings(page_language(request))
    notice = words["students_notice_saved"] if saved else None
    return _student(request, admin, student, notice=notice)


@router.post("/students/{phone}")
async def edit_student(request: Request, session: DBSession, admin: AdminOnly, phone: str) -> Response:
    form = await request.form()
    texts = {key: value for key, value in form.multi_items() if isinstance(value, str)}
    identity = {key: texts.get(key, "") for key in IDENTITY_FIELDS}
    columns = {key.removeprefix(COLUMN_PREFIX): value for key, value in texts.items() if key.startswith(COLUMN_PREFIX)}
    try:
        student = await service.edit_student(session, phone, identity, columns)
    except BedelError as exc:
        if exc.status == 404:
            raise
        student = await service.get_student(session, phone)
        return _student(request, admin, student, error=exc.message, status_code=exc.status, form=texts)
    await audit.record(session, console_caller(request, admin), Action.student_edit, phone=student.phone)
    return see_other(f"{student_path(student.phone)}?saved=true")


@router.post("/students/{phone}/delete")
async def delete_student(request: Request, session: DBSession, admin: AdminOnly, phone: str) -> Response:
    student = await service.get_student(session, phone)
    await service.delete_student(session, student.phone)
    await audit.record(session, console_caller(request, admin), Action.student_delete, phone=student.phone)
    return see_other(f"{PAGE}?{urlencode({'deleted': student.phone})}")


async def _list(
    request: Request,
    session: DBSession,
    admin: StaffUser,
    *,
    query: str = "",
    status_code: int = 200,
    notice: str | None = None,
    error: str | None = None,
    report: ImportReport | None = None,
    filename: str | None = None,
) -> Response:
    """The page: the import form (with the last import's report or error), the search and its results."""
    return render(
        request,
        "students.html",
        user=admin,
        status_code=status_code,
        here=PAGE,
        query=query,
        students=await service.search_students(session, query),
        student_path=student_path,
        notice=notice,
        error=error,
        report=report,
        filename=filename,
    )


def _student(
    request: Request,
    admin: StaffUser,
    student: Student,
    *,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
    form: dict[str, str] | None = None,
) -> Response:
    catalog = _catalog(request)
    return render(
        request,
        "student.html",
        user=admin,
        status_code=status_code,
        here=student_path(student.phone),
        student=student,
        label_for=catalog.label_for,
        notice=notice,
        error=error,
        form=form,
        prefix=COLUMN_PREFIX,
        student_path=student_path,
    )
