"""The institution's documents: add, replace, list and delete.

Business rules: a document is known by its source (the file name) and by its
content: the same text twice is one document, a changed file replaces its old
version, and every change moves the knowledge revision so every replica's index
follows. A file that cannot be read is reported by name and changes nothing;
the rest of its batch still loads.
"""

import asyncio
import hashlib
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from bedel.errors import NotFound, UpstreamUnavailable
from bedel.knowledge.chunking import Chunk, chunk_markdown
from bedel.knowledge.models import Document, DocumentChunk
from bedel.knowledge.parsing import ParsedDocument, UnreadableDocument, parse_document
from bedel.knowledge.repository import KnowledgeRepository
from bedel.knowledge.schemas import AddedDocument, AddReport, DocumentOut
from bedel.llm.ports import Embedder

MAX_SOURCE_CHARS = 500
EMBEDDING_BATCH = 64


@dataclass(frozen=True)
class ReadDocument:
    """A file turned into passages, before anything is written."""

    source: str
    parsed: ParsedDocument
    chunks: list[Chunk]
    content_hash: str
    size_bytes: int


def read_document(source: str, data: bytes) -> ReadDocument | AddedDocument:
    """Parse and chunk one file (CPU-bound: run it in a thread); a bad file comes back as `failed`."""
    source = source.strip()[:MAX_SOURCE_CHARS] or "document"
    try:
        parsed = parse_document(source, data)
    except UnreadableDocument as exc:
        return AddedDocument(source=source, status="failed", error=f"{source}: {exc}")
    chunks = chunk_markdown(parsed.markdown)
    if not chunks:
        return AddedDocument(source=source, status="failed", error=f"{source}: no text besides headings")
    return ReadDocument(source, parsed, chunks, _content_hash(parsed), len(data))


async def read_documents(files: Iterable[tuple[str, bytes]]) -> list[ReadDocument | AddedDocument]:
    """Read a batch off the event loop; a name given twice in one batch is refused the second time."""
    results: list[ReadDocument | AddedDocument] = []
    seen: set[str] = set()
    for source, data in files:
        result = await asyncio.to_thread(read_document, source, data)
        if result.source in seen:
            result = AddedDocument(source=result.source, status="failed", error=f"{result.source}: given twice")
        seen.add(result.source)
        results.append(result)
    return results


async def store_document(
    session: AsyncSession, read: ReadDocument | AddedDocument, *, embedder: Embedder | None = None
) -> AddedDocument:
    """Add, replace or recognise one read document. Flushes, never commits."""
    if isinstance(read, AddedDocument):
        return read
    source, parsed, chunks = read.source, read.parsed, read.chunks
    repository = KnowledgeRepository.from_session(session)
    await repository.lock()
    previous = await repository.get_by_source(source)
    if previous is not None and previous.content_hash == read.content_hash:
        return AddedDocument(source=source, status="unchanged", document=DocumentOut.model_validate(previous))
    same = await repository.get_by_hash(read.content_hash)
    if same is not None:
        # The text is already known under another name: one document; this name's old text goes.
        if previous is not None:
            await repository.delete(previous)
            await repository.new_revision()
        status = "replaced" if previous is not None else "unchanged"
        return AddedDocument(source=source, status=status, document=DocumentOut.model_validate(same))
    embeddings = None
    if embedder is not None:
        try:
            embeddings = await _embed(embedder, parsed.title, chunks)
        except UpstreamUnavailable as exc:
            return AddedDocument(source=source, status="failed", error=f"{source}: embeddings failed ({exc.message})")
    if previous is not None:
        await repository.delete(previous)
    document = Document(
        id=uuid.uuid4(),
        source=source,
        title=parsed.title,
        content_type=parsed.content_type,
        content_hash=read.content_hash,
        size_bytes=read.size_bytes,
        chunk_count=len(chunks),
    )
    await repository.add(document, chunks, embeddings)
    await repository.new_revision()
    status = "replaced" if previous is not None else "added"
    return AddedDocument(source=source, status=status, document=DocumentOut.model_validate(document))


async def add_document(
    session: AsyncSession, source: str, data: bytes, *, embedder: Embedder | None = None
) -> AddedDocument:
    """Read and store one file; never raises for a bad file, reports it instead. Flushes, never commits."""
    read = await asyncio.to_thread(read_document, source, data)
    return await store_document(session, read, embedder=embedder)


async def replace_document(
    session: AsyncSession, document_id: uuid.UUID, source: str, data: bytes, *, embedder: Embedder | None = None
) -> AddedDocument:
    """Put a new file in the place of a document: the file is stored under its own name (its type
    comes from it) and the old document goes, unless the file could not be stored, in which case
    nothing changes. Flushes, never commits."""
    old = await KnowledgeRepository.from_session(session).get(document_id)
    if old is None:
        raise NotFound("no document with this id")
    stored = await add_document(session, source, data, embedder=embedder)
    if stored.status == "failed" or stored.document is None or stored.document.id == old.id:
        return stored
    if old.source != stored.source:
        await delete_document(session, document_id)
    return stored.model_copy(update={"status": "replaced"})


def summarize(results: Iterable[AddedDocument]) -> AddReport:
    files = list(results)
    counts = {status: sum(1 for f in files if f.status == status) for status in ("added", "replaced", "unchanged")}
    return AddReport(**counts, failed=sum(1 for f in files if f.status == "failed"), files=files)


async def list_documents(session: AsyncSession) -> list[Document]:
    return list(await KnowledgeRepository.from_session(session).all())


async def get_document(session: AsyncSession, document_id: uuid.UUID) -> tuple[Document, list[DocumentChunk]]:
    repository = KnowledgeRepository.from_session(session)
    document = await repository.get(document_id)
    if document is None:
        raise NotFound("no document with this id")
    return document, list(await repository.chunks_of(document_id))


async def delete_document(session: AsyncSession, document_id: uuid.UUID) -> None:
    repository = KnowledgeRepository.from_session(session)
    await repository.lock()
    document = await repository.get(document_id)
    if document is None:
        raise NotFound("no document with this id")
    await repository.delete(document)
    await repository.new_revision()


async def current_revision(session: AsyncSession) -> str:
    """The knowledge revision in the database: an index of another one is not up to date yet."""
    return await KnowledgeRepository.from_session(session).current_revision()


def _content_hash(parsed: ParsedDocument) -> str:
    # Trailing spaces are not new content; line breaks are (they make headings and lists).
    return hashlib.sha256(re.sub(r"[ \t]+\n", "\n", parsed.markdown).strip().encode()).hexdigest()


async def _embed(embedder: Embedder, title: str, chunks: list[Chunk]) -> list[list[float]]:
    texts = [f"{title}\n{chunk.heading}\n{chunk.text}" for chunk in chunks]
    vectors: list[list[float]] = []
    for start in range(0, len(texts), EMBEDDING_BATCH):
        vectors += await embedder.embed(texts[start : start + EMBEDDING_BATCH])
    return vectors
