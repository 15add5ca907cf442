import uuid
from typing import Annotated, Protocol, cast

from fastapi import APIRouter, BackgroundTasks, File, Query, Request, Response, UploadFile, status

from bedel.auth import StaffOnly
from bedel.dependencies import CoreState, DBSession, get_state
from bedel.knowledge import service
from bedel.knowledge.retriever import KnowledgeRetriever
from bedel.knowledge.schemas import AddReport, ChunkOut, DocumentDetail, DocumentOut, SearchHit
from bedel.llm.ports import Embedder

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_SEARCH_RESULTS = 50

router = APIRouter(prefix="/knowledge", tags=["knowledge"], dependencies=[StaffOnly])


class KnowledgeState(CoreState, Protocol):
    """What /knowledge reads from the app's state."""

    knowledge: KnowledgeRetriever
    embedder: Embedder | None


def _state(request: Request) -> KnowledgeState:
    return cast(KnowledgeState, get_state(request))


@router.post("/documents", response_model=AddReport)
async def add_documents(
    request: Request,
    session: DBSession,
    background: BackgroundTasks,
    files: Annotated[list[UploadFile], File(description="Markdown, text, HTML, PDF or DOCX files")],
) -> AddReport:
    """Add or replace documents by file name; a bad file is reported while the others load."""
    state = _state(request)
    # Every file is parsed before the first write: the database is held only for the writes.
    read = await service.read_documents([(file.filename or "document", await file.read()) for file in files])
    results = [await service.store_document(session, document, embedder=state.embedder) for document in read]
    # Runs after the request's transaction commits: the index follows the new revision.
    background.add_task(state.knowledge.follow_change)
    return service.summarize(results)


@router.get("/documents", response_model=list[DocumentOut])
async def list_documents(session: DBSession) -> list[DocumentOut]:
    return [DocumentOut.model_validate(document) for document in await service.list_documents(session)]


@router.get("/documents/{document_id}", response_model=DocumentDetail)
async def get_document(document_id: uuid.UUID, session: DBSession) -> DocumentDetail:
    document, chunks = await service.get_document(session, document_id)
    return DocumentDetail(
        **DocumentOut.model_validate(document).model_dump(),
        chunks=[ChunkOut.model_validate(chunk) for chunk in chunks],
    )


@router.delete("/documents/{document_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_document(
    document_id: uuid.UUID, request: Request, session: DBSession, background: BackgroundTasks
) -> Response:
    await service.delete_document(session, document_id)
    background.add_task(_state(request).knowledge.follow_change)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/search", response_model=list[SearchHit])
async def search(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=1000, description="What a student would ask")],
    limit: Annotated[int, Query(ge=1, le=MAX_SEARCH_RESULTS)] = 10,
) -> list[SearchHit]:
    passages = await _state(request).knowledge.retrieve(q, (), limit)
    return [SearchHit.model_validate(passage, from_attributes=True) for passage in passages]
