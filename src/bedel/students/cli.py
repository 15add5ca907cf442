"""`bedel students import FILE` loads a CSV, Excel, JSON or JSONL file of students;
`bedel students fields` shows how the loaded list's columns are understood."""

import asyncio
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from sqlalchemy.exc import SQLAlchemyError

from bedel.config import ConfigError, Settings, load_settings
from bedel.db import create_engine, create_sessionmaker, session_scope
from bedel.errors import BedelError
from bedel.students.columns import ColumnReading
from bedel.students.fields import load_field_catalog
from bedel.students.schemas import FieldsReport, ImportReport
from bedel.students.service import import_students, read_loaded_columns

EXIT_FILE = 1
EXIT_CONFIG = 2
EXIT_DATABASE = 3

app = typer.Typer(help="Student records", no_args_is_help=True)


@app.command("import")
def import_file(
    file: Annotated[
        Path, typer.Argument(help="A .csv, .xlsx (Excel, first sheet), .json (array of objects) or .jsonl file")
    ],
) -> None:
    """Upsert students by phone. Bad rows are listed and skipped; the others load. Columns nothing
    understood are warned about."""
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
        _fail(EXIT_DATABASE, _database_error(exc))
    typer.echo(_summary(file.name, report))
    for error in report.errors:
        typer.echo(f"{error.location}: {error.message}")
    for warning in report.warnings:
        typer.echo(f"warning: {warning}")


@app.command("fields")
def show_fields() -> None:
    """How each column of the loaded list is understood: the record field it fills or the concept
    it serves. Correct it by editing a copy of the field catalog (BEDEL_FIELDS_FILE)."""
    try:
        settings = load_settings()
        report = asyncio.run(_fields(settings))
    except ConfigError as exc:
        _fail(EXIT_CONFIG, str(exc))
    except SQLAlchemyError as exc:
        _fail(EXIT_DATABASE, _database_error(exc))
    typer.echo(f"{report.students} students; columns read from the {report.sampled} loaded last")
    for role, count in report.record_fields.items():
        typer.echo(f"  {'(' + role + ')':<24} {'record field':<29} {count} students")
    for reading in report.columns:
        typer.echo(f"  {reading.column:<24} {_meaning(reading):<29} {reading.filled} students")
    for warning in report.warnings:
        typer.echo(f"warning: {warning}")


def _meaning(reading: ColumnReading) -> str:
    if reading.field is not None:
        return f"record field {reading.field}"
    if reading.concept is not None:
        return f"{reading.concept} ({reading.kind})"
    return f"not understood ({reading.values or 'empty'})"


async def _fields(settings: Settings) -> FieldsReport:
    catalog = load_field_catalog(settings.fields_file)
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return await read_loaded_columns(session, catalog)
    finally:
        await engine.dispose()


def _database_error(exc: SQLAlchemyError) -> str:
    return f"database error ({type(exc).__name__}); check BEDEL_DATABASE_URL and run `bedel db upgrade`"


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
