"""The retriever every replica holds: the index of the database's current knowledge revision.

Documents live in the database; each replica keeps a memory-mapped index of one
revision. When the revision moves (a document added, replaced or deleted, by this
replica or another), the new index is built by a separate worker process, which reads
the chunks from the database and saves the index on disk; the replica then maps it
and swaps it in whole. Searches never wait for a rebuild, never see half an index,
and the build's CPU, memory and garbage-collection pauses stay out of the process
serving requests.
"""

import asyncio
import contextlib
import multiprocessing
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bedel.db import create_engine, create_sessionmaker
from bedel.errors import UpstreamUnavailable
from bedel.knowledge.index import Query, SearchIndex, directory_name, is_index_directory
from bedel.knowledge.repository import KnowledgeRepository
from bedel.llm.ports import Embedder, Passage

log = structlog.get_logger()


class KnowledgeRetriever:
    def __init__(
        self,
        database_url: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        index_dir: Path,
        *,
        embedder: Embedder | None = None,
        refresh_s: float = 5.0,
    ) -> None:
        self._database_url = database_url
        self._sessionmaker = sessionmaker
        self._index_dir = index_dir
        self._embedder = embedder
        self._refresh_s = refresh_s
        self._index = SearchIndex.empty("")
        self._rebuild = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        self._builder: ProcessPoolExecutor | None = None

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
        if self._builder is not None:
            self._builder.shutdown(wait=False, cancel_futures=True)

    async def refresh(self) -> None:
        """Bring the index up to the database's revision; one rebuild at a time."""
        async with self._rebuild:
            async with self._sessionmaker() as session:
                repository = KnowledgeRepository.from_session(session)
                revision = await repository.current_revision()
                if revision == self._index.revision:
                    return
                index = await asyncio.to_thread(SearchIndex.load, self._index_dir, revision)
                if index is None and not await repository.has_chunks():
                    index = SearchIndex.empty(revision)
            if index is None:
                await self._build(revision)
                index = await asyncio.to_thread(SearchIndex.load, self._index_dir, revision)
                # The chunks went between the check and the build: nothing was saved.
                index = index or SearchIndex.empty(revision)
            self._index = index
            log.info("knowledge_index_ready", revision=revision, chunks=index.size)

    async def _build(self, revision: str) -> None:
        """Have the worker process build and save `revision`; a worker that died is replaced once."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._worker(), build_index, self._database_url, self._index_dir, revision)
        except BrokenProcessPool:
            log.warning("knowledge_builder_replaced", message="the index build process died; starting a new one")
            assert self._builder is not None
            self._builder.shutdown(wait=False, cancel_futures=True)
            self._builder = None
            await loop.run_in_executor(self._worker(), build_index, self._database_url, self._index_dir, revision)

    def _worker(self) -> ProcessPoolExecutor:
        """One long-lived build process, forked from a clean server process ("forkserver"):
        no copy of this process's threads, connections or memory."""
        if self._builder is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__])
            self._builder = ProcessPoolExecutor(1, mp_context=context)
        return self._builder

    async def follow_change(self) -> None:
        """Refresh after a change; a failure is logged and the previous index keeps serving."""
        try:
            await self.refresh()
        except Exception:
            log.exception("knowledge_refresh_failed")

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            await self.follow_change()

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


def build_index(database_url: str, index_dir: Path, revision: str) -> None:
    """In the worker process: read every chunk, index them, save the index as `revision`.

    The revision was read before the chunks: a change landing in between leaves a newer
    revision behind, which the next refresh picks up.
    """
    rows = asyncio.run(_index_rows(database_url))
    index = SearchIndex.build(revision, rows)
    if index.size and not index.save(index_dir):
        # The replica keeps its previous index and tries again at its next refresh.
        raise OSError(f"cannot save the search index under {index_dir}; check BEDEL_KNOWLEDGE_INDEX_DIR is writable")
    for stale in index_dir.glob("*"):
        # Only indexes this code saved, never anything else kept in the folder.
        if stale.is_dir() and is_index_directory(stale.name) and stale.name != directory_name(revision):
            shutil.rmtree(stale, ignore_errors=True)


async def _index_rows(database_url: str) -> list[dict[str, object]]:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return await KnowledgeRepository.from_session(session).index_rows()
    finally:
        await engine.dispose()
