"""The retriever every replica holds: the index of the database's current knowledge revision.

Documents live in the database; each replica keeps an in-memory (memory-mapped) index
of one revision. When the revision moves (a document added, replaced or deleted, by
this replica or another), the new index is built in a worker thread and swapped in
whole, so searches never wait for a rebuild and never see half an index.
"""

import asyncio
import contextlib
import shutil
from collections.abc import Sequence
from pathlib import Path

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bedel.errors import UpstreamUnavailable
from bedel.knowledge.index import Query, SearchIndex, directory_name
from bedel.knowledge.repository import KnowledgeRepository
from bedel.llm.ports import Embedder, Passage

log = structlog.get_logger()


class KnowledgeRetriever:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        index_dir: Path,
        *,
        embedder: Embedder | None = None,
        refresh_s: float = 5.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._index_dir = index_dir
        self._embedder = embedder
        self._refresh_s = refresh_s
        self._index = SearchIndex.empty("")
        self._rebuild = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None

    @property
    def revision(self) -> str:
        return self._index.revision

    async def start(self) -> None:
        """Load (or, the first time for this revision, build) the index, then follow the database.

        A database that is down or not migrated yet does not stop the service (readiness
        reports it); the index is loaded as soon as the database answers.
        """
        try:
            await self.refresh()
        except (SQLAlchemyError, OSError):
            log.warning("knowledge_index_unavailable", message="the database cannot be read yet; retrying")
        self._poller = asyncio.create_task(self._follow())

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    async def refresh(self) -> None:
        """Bring the index up to the database's revision; one rebuild at a time."""
        async with self._rebuild:
            async with self._sessionmaker() as session:
                repository = KnowledgeRepository.from_session(session)
                revision = await repository.current_revision()
                if revision == self._index.revision:
                    return
                index = await asyncio.to_thread(SearchIndex.load, self._index_dir, revision)
                if index is None:
                    # The revision is read before the chunks: a change landing in between
                    # leaves a newer revision behind, which the next refresh picks up.
                    rows = await repository.index_rows()
            if index is None:
                index = await asyncio.to_thread(self._build, revision, rows)
            self._index = index
            log.info("knowledge_index_ready", revision=revision, chunks=index.size)

    def _build(self, revision: str, rows: list[dict[str, object]]) -> SearchIndex:
        index = SearchIndex.build(revision, rows)
        index.save(self._index_dir)
        for stale in self._index_dir.glob("*"):
            if stale.is_dir() and stale.name != directory_name(revision) and not stale.name.startswith("."):
                shutil.rmtree(stale, ignore_errors=True)
        return index

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.refresh()
            except Exception:
                log.exception("knowledge_refresh_failed")

    async def retrieve(self, question: str, context: Sequence[str], limit: int) -> list[Passage]:
        """Passages for a question, with the recent turns as context ("¿y cuánto tarda?")."""
        vector = None
        if self._embedder is not None and self._index.size:
            try:
                vector = (await self._embedder.embed([" ".join([*context, question])]))[0]
            except UpstreamUnavailable:
                # Lexical search alone still answers; the vectors come back with the endpoint.
                log.warning("embedding_skipped")
        return self._index.search(Query.from_text(question, context, vector), limit)
