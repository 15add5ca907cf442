"""Documents (admins only): upload several at once, see their passages, replace, delete, and try a
question to see which passages it finds. The knowledge service does the work, as for the API."""

import uuid
from typing import Annotated, cast
from urllib.parse import urlencode

from fastapi import BackgroundTasks, File, Form, Query, Request, Response, UploadFile

from bedel.console.auth import AdminOnly, console_router
from bedel.console.catalogue import strings
from bedel.console.rendering import page_language, render, see_other
from bedel.dependencies import DBSession, get_state
from bedel.errors import BedelError
from bedel.knowledge import service
from bedel.knowledge.endpoints import MAX_UPLOAD_BYTES, KnowledgeState
from bedel.knowledge.schemas import AddedDocument
from bedel.llm.ports import Passage
from bedel.users.models import StaffUser

router = console_router()

PAGE = "/console/documents"
# The paths that take files: the request-size middleware lets them carry what the API's upload may.
UPLOAD_PATHS = (PAGE, f"{PAGE}/replace")
MAX_QUESTION_CHARS = 1000
PASSAGES_SHOWN = 10
NOTICES = ("deleted",)
REPLACE_NOTICES = ("replaced", "unchanged")


def _state(request: Request) -> KnowledgeState:
    return cast(KnowledgeState, get_state(request))


@router.get("/documents")
async def documents_page(
    request: Request,
    session: DBSession,
    admin: AdminOnly,
    q: Annotated[str, Query(max_length=MAX_QUESTION_CHARS)] = "",
    notice: Annotated[str | None, Query()] = None,
) -> Response:
    """The list, the upload form and, with `q`, the passages a question finds (with their scores)."""
    passages, indexing = None, False
    if q.strip():
        knowledge = _state(request).knowledge
        passages = await knowledge.retrieve(q.strip(), (), PASSAGES_SHOWN)
        # The index follows a change a moment after it (built in another process): say so
        # rather than let a question miss what was just uploaded.
        indexing = knowledge.revision != await service.current_revision(session)
    return await _page(request, session, admin, question=q, passages=passages, indexing=indexing, notice=notice)


@router.post("/documents")
async def upload_documents(
    request: Request,
    session: DBSession,
    admin: AdminOnly,
    background: BackgroundTasks,
    files: Annotated[list[UploadFile], File()],
) -> Response:
    """Each file is stored or refused on its own; a refused file stores nothing and says why."""
    state = _state(request)
    # Every file is read before the first write, as the API does.
    read = await service.read_documents([(file.filename or "", await file.read()) for file in files])
    results = [await service.store_document(session, document, embedder=state.embedder) for document in read]
    background.add_task(state.knowledge.follow_change)
    refused = all(result.status == "failed" for result in results)
    return await _page(request, session, admin, results=results, status_code=422 if refused else 200)


@router.get("/documents/{document_id}")
async def document_page(
    request: Request,
    session: DBSession,
    admin: AdminOnly,
    document_id: uuid.UUID,
    notice: Annotated[str | None, Query()] = None,
) -> Response:
    document, chunks = await service.get_document(session, document_id)
    words = strings(page_language(request))
    message = words[f"documents_notice_{notice}"] if notice in REPLACE_NOTICES else None
    return render(request, "document.html", user=admin, document=document, chunks=chunks, result=None, notice=message)


@router.post("/documents/replace")
async def replace_document(
    request: Request,
    session: DBSession,
    admin: AdminOnly,
    background: BackgroundTasks,
    document_id: Annotated[uuid.UUID, Form()],
    file: Annotated[UploadFile, File()],
) -> Response:
    state = _state(request)
    result = await service.replace_document(
        session, document_id, file.filename or "", await file.read(), embedder=state.embedder
    )
    if result.status == "failed" or result.document is None:
        document, chunks = await service.get_document(session, document_id)
        return render(
            request,
            "document.html",
            user=admin,
            status_code=422,
            here=f"{PAGE}/{document_id}",
            document=document,
            chunks=chunks,
            result=result,
            notice=None,
        )
    background.add_task(state.knowledge.follow_change)
    return see_other(f"{PAGE}/{result.document.id}?{urlencode({'notice': result.status})}")


@router.post("/documents/{document_id}/delete")
async def delete_document(
    request: Request, session: DBSession, admin: AdminOnly, background: BackgroundTasks, document_id: uuid.UUID
) -> Response:
    try:
        await service.delete_document(session, document_id)
    except BedelError as exc:
        return await _page(request, session, admin, error=exc)
    background.add_task(_state(request).knowledge.follow_change)
    return see_other(f"{PAGE}?notice=deleted")


async def _page(
    request: Request,
    session: DBSession,
    admin: StaffUser,
    *,
    question: str = "",
    passages: list[Passage] | None = None,
    indexing: bool = False,
    results: list[AddedDocument] | None = None,
    notice: str | None = None,
    error: BedelError | None = None,
    status_code: int = 200,
) -> Response:
    words = strings(page_language(request))
    return render(
        request,
        "documents.html",
        user=admin,
        status_code=error.status if error else status_code,
        here=PAGE,
        documents=await service.list_documents(session),
        question=question,
        passages=passages,
        indexing=indexing,
        results=results,
        notice=words[f"documents_notice_{notice}"] if notice in NOTICES else None,
        error=words.get(f"documents_error_{error.code}", error.message) if error else None,
        min_relevance=get_state(request).settings.knowledge_min_relevance,
        max_upload_bytes=MAX_UPLOAD_BYTES,
    )
