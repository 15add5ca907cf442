"""`bedel students import FILE`: load a CSV, JSON or JSONL file of students."""

import asyncio
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from sqlalchemy.exc import SQLAlchemyError

from bedel.config import ConfigError, Settings, load_settings
from bedel.db import create_engine, create_sessionmaker, session_scope
from bedel.errors import BedelError
from bedel.students.fields import load_field_catalog
from bedel.students.schemas import ImportReport
from bedel.students.service import import_students

EXIT_FILE = 1
EXIT_CONFIG = 2
EXIT_DATABASE = 3

app = typer.Typer(help="Student records", no_args_is_help=True)


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="A .csv, .json (array of objects) or .jsonl file")],
) -> None:
    """Upsert students by phone. Bad rows are listed and skipped; the others load."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        _fail(EXIT_FILE, f"cannot read {file}: {exc.strerror}")
    try:
        settings = load_settings()
        report = asyncio.run(_import(settings, data, file.name))
    except ConfigError as exc:
        _fail(EXIT_CONFIG, str(exc))
    except BedelError as exc:
        _fail(EXIT_FILE, f"{file}: {exc.message}; nothing was imported")
    except SQLAlchemyError as exc:
        hint = "check BEDEL_DATABASE_URL and run `bedel db upgrade`"
        _fail(EXIT_DATABASE, f"database error ({type(exc).__name__}); {hint}")
    typer.echo(_summary(file.name, report))
    for error in report.errors:
        typer.echo(f"{error.location}: {error.message}")


async def _import(settings: Settings, data: bytes, filename: str) -> ImportReport:
    catalog = load_field_catalog(settings.fields_file)
    engine = create_engine(settings.database_url)
    reports: list[ImportReport] = []
    try:
        # Run the loop to its end: session_scope commits after its single yield.
        async for session in session_scope(create_sessionmaker(engine)):
            reports.append(await import_students(session, data, filename, catalog=catalog))
    finally:
        await engine.dispose()
    return reports[0]


def _summary(filename: str, report: ImportReport) -> str:
    skipped = len(report.errors)
    rows = "row" if skipped == 1 else "rows"
    return f"{filename}: {report.created} created, {report.updated} updated, {skipped} {rows} not loaded"


def _fail(code: int, message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
