from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response, status
from fastapi.responses import JSONResponse

from bedel.audit import service as audit
from bedel.audit.models import Action
from bedel.auth import StaffCaller, StaffOnly
from bedel.dependencies import DBSession, get_state
from bedel.paging import MAX_OFFSET
from bedel.privacy import service
from bedel.privacy.schemas import ErasureReceipt, StudentExport
from bedel.students.endpoints import PHONE_DOC
from bedel.students.service import delete_student

router = APIRouter(tags=["privacy"], dependencies=[StaffOnly])


@router.get("/students/{phone}/export", response_model=StudentExport, description=PHONE_DOC)
async def export_student(phone: str, session: DBSession, caller: StaffCaller) -> StudentExport:
    """Everything held about the student (ARCO access): record, conversations, attachments listed,
    identities, verification attempts, feedback, campaign receipts, opt-out, queued jobs."""
    return await service.export_student(session, phone, caller)


@router.delete(
    "/students/{phone}",
    response_model=None,
    responses={
        200: {"model": ErasureReceipt, "description": "Erased (`erase=true`): the receipt"},
        204: {"description": "The record deleted"},
    },
    description=PHONE_DOC,
)
async def delete_student_route(
    phone: str,
    request: Request,
    session: DBSession,
    background: BackgroundTasks,
    caller: StaffCaller,
    erase: Annotated[
        bool, Query(description="Erase everything held about the student (ARCO cancellation), not only the record")
    ] = False,
) -> Response:
    """Delete the student's record; with `erase=true`, every row held about them, answering the receipt."""
    if not erase:
        await delete_student(session, phone)
        await audit.record(session, caller, Action.student_delete, phone=phone)
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    receipt = await service.erase_student(session, phone, caller)
    # After the request's transaction has committed.
    background.add_task(service.scrub_after_erasure, get_state(request).engine)
    return JSONResponse(ErasureReceipt.model_validate(receipt).model_dump(mode="json"))


@router.get("/erasures", response_model=list[ErasureReceipt])
async def list_erasures(
    session: DBSession,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[ErasureReceipt]:
    """The erasures done, latest first: the receipts, naming no student."""
    return [ErasureReceipt.model_validate(erasure) for erasure in await service.list_erasures(session, limit, offset)]
