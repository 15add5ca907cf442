"""`bedel kb add PATH...`: load the institution's documents from files and folders."""

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from bedel.commands import EXIT_INPUT, run
from bedel.config import Settings
from bedel.db import create_sessionmaker, session_scope
from bedel.knowledge.parsing import supported
from bedel.knowledge.retriever import KnowledgeRetriever
from bedel.knowledge.schemas import AddedDocument, AddReport
from bedel.knowledge.service import add_document, summarize
from bedel.llm.factory import create_embedder
from bedel.ops.logging import configure_logging

app = typer.Typer(help="The institution's documents (knowledge base)", no_args_is_help=True)


@app.command("add")
def add(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively)")],
) -> None:
    """Add or replace documents (.md, .txt, .html, .pdf, .docx); a bad file is reported, the rest load."""
    configure_logging()
    files = _files(paths)
    report = run(lambda settings, engine: _add(settings, engine, files))
    for result in report.files:
        typer.echo(result.error if result.error else f"{result.source}: {result.status}")
    typer.echo(
        f"{report.added} added, {report.replaced} replaced, {report.unchanged} unchanged, {report.failed} failed"
    )
    if report.failed:
        raise typer.Exit(EXIT_INPUT)


def _files(paths: list[Path]) -> list[tuple[str, Path]]:
    """(source name, path) pairs, each file once.

    A file is named by its path from the current folder, so adding a folder and later
    one file in it (or the same folder again) names each file the same way, and a
    changed file replaces its old version; two folders' README.md stay two documents.
    """
    found: dict[str, Path] = {}
    for path in paths:
        if not path.is_dir():
            found.setdefault(_source_name(path), path)
            continue
        for file in sorted(path.rglob("*")):
            hidden = any(part.startswith((".", "~$")) for part in file.relative_to(path).parts)
            if file.is_file() and not hidden and supported(file.name):
                found.setdefault(_source_name(file), file)
    return list(found.items())


def _source_name(path: Path) -> str:
    absolute = path.resolve()
    try:
        return absolute.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return absolute.as_posix()


async def _add(settings: Settings, engine: AsyncEngine, files: list[tuple[str, Path]]) -> AddReport:
    sessionmaker = create_sessionmaker(engine)
    embedder = create_embedder(settings)
    results: list[AddedDocument] = []
    try:
        for source, path in files:
            try:
                data = path.read_bytes()
            except OSError as exc:
                results.append(AddedDocument(source=source, status="failed", error=f"{path}: {exc.strerror}"))
                continue
            # One transaction per file: a failure never undoes the files before it.
            async for session in session_scope(sessionmaker):
                results.append(await add_document(session, source, data, embedder=embedder))
        # Build and save the new index now, so the server loads it instead of re-indexing.
        retriever = KnowledgeRetriever(settings.database_url, sessionmaker, settings.knowledge_index_dir)
        try:
            await retriever.refresh()
        finally:
            await retriever.aclose()
    finally:
        if embedder is not None:
            await embedder.aclose()
    return summarize(results)
