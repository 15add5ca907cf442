import uuid
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bedel.db import Base, RecordMixin, utcnow


class Document(RecordMixin, Base):
    __tablename__ = "documents"

    # Where the document came from (a file name or path); re-adding the same source replaces it.
    source: Mapped[str] = mapped_column(String(500), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    content_type: Mapped[str] = mapped_column(String(100))
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int]
    chunk_count: Mapped[int]


class DocumentChunk(Base):
    __tablename__ = "document_chunks"
    __table_args__ = (UniqueConstraint("document_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    heading: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int]
    # Dense vector from the embeddings endpoint, when one is configured.
    embedding: Mapped[list[float] | None] = mapped_column(JSON)


class KnowledgeVersion(Base):
    """One row whose revision changes with every document change: replicas rebuild when it moves.

    A random revision rather than a counter: an index saved on disk for one database
    can never be mistaken for another database's index of the same count.
    """

    __tablename__ = "knowledge_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[str] = mapped_column(String(32))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
