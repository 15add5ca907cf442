import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.db import utcnow
from bedel.knowledge.chunking import Chunk
from bedel.knowledge.models import Document, DocumentChunk, KnowledgeVersion

_chunks = cast(Table, DocumentChunk.__table__)
_documents = cast(Table, Document.__table__)
# Rows per INSERT: few round trips for a long document, well under every bind-parameter limit.
INSERT_BATCH = 500


class KnowledgeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> "KnowledgeRepository":
        return cls(session)

    async def lock(self) -> None:
        """Take the knowledge row lock (PostgreSQL), so document changes apply one at a time."""
        await self.session.execute(select(KnowledgeVersion.id).where(KnowledgeVersion.id == 1).with_for_update())

    async def new_revision(self) -> str:
        revision = uuid.uuid4().hex
        statement = (
            update(KnowledgeVersion).where(KnowledgeVersion.id == 1).values(revision=revision, changed_at=utcnow())
        )
        await self.session.execute(statement)
        return revision

    async def current_revision(self) -> str:
        return str(await self.session.scalar(select(KnowledgeVersion.revision).where(KnowledgeVersion.id == 1)))

    async def has_chunks(self) -> bool:
        return await self.session.scalar(select(_chunks.c.id).limit(1)) is not None

    async def get(self, document_id: uuid.UUID) -> Document | None:
        return await self.session.get(Document, document_id)

    async def get_by_hash(self, content_hash: str) -> Document | None:
        return await self.session.scalar(select(Document).where(Document.content_hash == content_hash))

    async def get_by_source(self, source: str) -> Document | None:
        return await self.session.scalar(select(Document).where(Document.source == source))

    async def all(self) -> Sequence[Document]:
        return (await self.session.scalars(select(Document).order_by(Document.title, Document.source))).all()

    async def chunks_of(self, document_id: uuid.UUID) -> Sequence[DocumentChunk]:
        query = select(DocumentChunk).where(DocumentChunk.document_id == document_id).order_by(DocumentChunk.position)
        return (await self.session.scalars(query)).all()

    async def add(self, document: Document, chunks: Sequence[Chunk], embeddings: Sequence[list[float]] | None) -> None:
        self.session.add(document)
        await self.session.flush()
        rows: list[dict[str, Any]] = [
            {
                "document_id": document.id,
                "position": chunk.position,
                "heading": chunk.heading,
                "text": chunk.text,
                "token_count": chunk.token_count,
                "embedding": embeddings[chunk.position] if embeddings else None,
            }
            for chunk in chunks
        ]
        for start in range(0, len(rows), INSERT_BATCH):
            await self.session.execute(insert(_chunks), rows[start : start + INSERT_BATCH])

    async def delete(self, document: Document) -> None:
        # Chunks first: SQLite only cascades with foreign keys on, and this works either way.
        await self.session.execute(delete(_chunks).where(_chunks.c.document_id == document.id))
        await self.session.delete(document)
        await self.session.flush()

    async def index_rows(self) -> list[dict[str, Any]]:
        """Every chunk with its document's title, in a stable order, for building the search index."""
        query = (
            select(
                _chunks.c.id,
                _chunks.c.document_id,
                _documents.c.title,
                _chunks.c.heading,
                _chunks.c.text,
                _chunks.c.embedding,
            )
            .join(_documents, _documents.c.id == _chunks.c.document_id)
            .order_by(_chunks.c.id)
        )
        return [dict(row._mapping) for row in await self.session.execute(query)]
