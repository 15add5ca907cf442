from typing import Annotated, Protocol, cast

from fastapi import APIRouter, File, Request, Response, UploadFile, status

from bedel.auth import StaffOnly
from bedel.dependencies import CoreState, DBSession, get_state
from bedel.errors import UnsupportedMediaType
from bedel.students import service
from bedel.students.fields import FieldCatalog
from bedel.students.parsing import format_from_content_type, format_from_name
from bedel.students.schemas import ImportReport, StudentOut, StudentUpdate

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
    file: Annotated[UploadFile, File(description="A .csv, .json (array) or .jsonl file, UTF-8")],
) -> ImportReport:
    """Upsert students by phone; bad rows are reported by line while the good ones load."""
    file_format = format_from_name(file.filename or "") or format_from_content_type(file.content_type)
    if file_format is None:
        raise UnsupportedMediaType("send a .csv, .json or .jsonl file", field="file")
    data = await file.read()  # the request-size middleware bounds it by MAX_IMPORT_BYTES
    catalog = _state(request).catalog
    return await service.import_students(session, data, file_format, catalog=catalog)


@router.get("/{phone}", response_model=StudentOut, description=PHONE_DOC)
async def get_student(phone: str, session: DBSession) -> StudentOut:
    return StudentOut.model_validate(await service.get_student(session, phone))


@router.put(
    "/{phone}",
    response_model=StudentOut,
    responses={201: {"model": StudentOut, "description": "Created"}},
    description=f"Create or replace a student's whole record. {PHONE_DOC}",
)
async def replace_student(phone: str, body: StudentUpdate, session: DBSession, response: Response) -> StudentOut:
    student, created = await service.replace_student(session, phone, body)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return StudentOut.model_validate(student)


@router.delete("/{phone}", status_code=status.HTTP_204_NO_CONTENT, description=PHONE_DOC)
async def delete_student(phone: str, session: DBSession) -> Response:
    await service.delete_student(session, phone)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
