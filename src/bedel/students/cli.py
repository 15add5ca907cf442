"""`bedel students import FILE` loads a CSV, Excel, JSON or JSONL file of students;
`bedel students fields` shows how the loaded list's columns are understood."""

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from bedel.commands import EXIT_INPUT, fail, in_transaction, run
from bedel.config import Settings
from bedel.db import create_sessionmaker
from bedel.errors import BedelError
from bedel.students.columns import ColumnReading
from bedel.students.fields import load_field_catalog
from bedel.students.schemas import FieldsReport, ImportReport
from bedel.students.service import import_students, read_loaded_columns

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
        fail(EXIT_INPUT, f"cannot read {file}: {exc.strerror}")
    report = run(lambda settings, engine: _import(settings, engine, data, file))
    typer.echo(_summary(file.name, report))
    for error in report.errors:
        typer.echo(f"{error.location}: {error.message}")
    for warning in report.warnings:
        typer.echo(f"warning: {warning}")


@app.command("fields")
def show_fields() -> None:
    """How each column of the loaded list is understood: the record field it fills or the concept
    it serves. Correct it by editing a copy of the field catalog (BEDEL_FIELDS_FILE)."""
    report = run(_fields)
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


async def _fields(settings: Settings, engine: AsyncEngine) -> FieldsReport:
    catalog = load_field_catalog(settings.fields_file)
    async with create_sessionmaker(engine)() as session:
        return await read_loaded_columns(session, catalog)


async def _import(settings: Settings, engine: AsyncEngine, data: bytes, file: Path) -> ImportReport:
    catalog = load_field_catalog(settings.fields_file)
    try:
        return await in_transaction(
            create_sessionmaker(engine), lambda session: import_students(session, data, file.name, catalog=catalog)
        )
    except BedelError as exc:
        raise BedelError(f"{file}: {exc.message}; nothing was imported") from exc


def _summary(filename: str, report: ImportReport) -> str:
    skipped = len(report.errors)
    rows = "row" if skipped == 1 else "rows"
    return f"{filename}: {report.created} created, {report.updated} updated, {skipped} {rows} not loaded"
