from typing import Annotated, Protocol, cast

from fastapi import APIRouter, File, Request, Response, UploadFile, status

from bedel.audit import service as audit
from bedel.audit.models import Action
from bedel.auth import StaffCaller, StaffOnly
from bedel.dependencies import CoreState, DBSession, get_state
from bedel.students import service
from bedel.students.fields import FieldCatalog
from bedel.students.schemas import FieldsReport, ImportReport, StudentOut, StudentUpdate

MAX_IMPORT_BYTES = 20 * 1024 * 1024

router = APIRouter(prefix="/students", tags=["students"], dependencies=[StaffOnly])

PHONE_DOC = "Any common shape (`+52 1 55...`, `55-1234-5678`, `%2B52...`); normalised."


class StudentsState(CoreState, Protocol):
    """What /students reads from the app's state."""

    catalog: FieldCatalog


def _state(request: Request) -> StudentsState:
    return cast(StudentsState, get_state(request))


@router.post("/import", response_model=ImportReport)
async def import_students(
    request: Request,
    session: DBSession,
    caller: StaffCaller,
    file: Annotated[
        UploadFile, File(description="A .csv (UTF-8), .xlsx (Excel, first sheet), .json (array) or .jsonl file")
    ],
) -> ImportReport:
    """Upsert students by phone; bad rows are reported by line while the good ones load, and the
    report says how each column was understood."""
    file_format = service.upload_format(file.filename or "", file.content_type)
    data = await file.read()  # the request-size middleware bounds it by MAX_IMPORT_BYTES
    catalog = _state(request).catalog
    report = await service.import_students(session, data, file_format, catalog=catalog)
    name = (file.filename or "")[:254]
    await audit.record(session, caller, Action.students_import, target=name, detail=_counts(report))
    return report


def _counts(report: ImportReport) -> dict[str, int]:
    return {"created": report.created, "updated": report.updated, "rejected": len(report.errors)}


@router.get("/fields", response_model=FieldsReport)
async def read_fields(request: Request, session: DBSession) -> FieldsReport:
    """How each column of the loaded list is understood and which concept it serves; correct it
    with BEDEL_FIELDS_FILE."""
    return await service.read_loaded_columns(session, _state(request).catalog)


@router.get("/{phone}", response_model=StudentOut, description=PHONE_DOC)
async def get_student(phone: str, session: DBSession, caller: StaffCaller) -> StudentOut:
    student = await service.get_student(session, phone)
    await audit.record(session, caller, Action.student_read, phone=student.phone)
    return StudentOut.model_validate(student)


@router.put(
    "/{phone}",
    response_model=StudentOut,
    responses={201: {"model": StudentOut, "description": "Created"}},
    description=f"Create or replace a student's whole record. {PHONE_DOC}",
)
async def replace_student(
    phone: str, body: StudentUpdate, session: DBSession, response: Response, caller: StaffCaller
) -> StudentOut:
    student, created = await service.replace_student(session, phone, body)
    await audit.record(session, caller, Action.student_edit, phone=student.phone, detail={"created": created})
    if created:
        response.status_code = status.HTTP_201_CREATED
    return StudentOut.model_validate(student)
