import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict

from bedel.db import UTCDateTime


class DocumentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    source: str
    title: str
    content_type: str
    size_bytes: int
    chunk_count: int
    created_at: UTCDateTime
    updated_at: UTCDateTime


class ChunkOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    position: int
    heading: str
    text: str
    token_count: int


class DocumentDetail(DocumentOut):
    chunks: list[ChunkOut]


class AddedDocument(BaseModel):
    """What happened to one file of a batch."""

    source: str
    status: Literal["added", "replaced", "unchanged", "failed"]
    document: DocumentOut | None = None
    error: str | None = None


class AddReport(BaseModel):
    added: int
    replaced: int
    unchanged: int
    failed: int
    files: list[AddedDocument]


class SearchHit(BaseModel):
    chunk_id: int
    document_id: uuid.UUID
    title: str
    heading: str
    text: str
    score: float
    relevance: float
