"""Reading student files (CSV, Excel .xlsx, JSON array, JSONL) into rows: pure functions, no database.

A file either parses as a whole or raises `InvalidInput` naming the problem; a
parsed file yields one row per student plus a `RowError` for each row that
cannot be loaded, located by physical line (CSV and Excel counting the header as
line 1, JSONL) or by 1-based position in a JSON array ("item 3"). It also keeps,
for each column, how many rows fill it and a few of its values, to say how the
column was understood.
"""

import csv
import datetime as dt
import io
import json
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePath
from typing import TYPE_CHECKING, Any
from xml.etree.ElementTree import ParseError

import openpyxl
from openpyxl.utils.exceptions import InvalidFileException

from bedel.errors import InvalidInput
from bedel.phones import InvalidPhone, normalize_phone
from bedel.students.fields import FieldCatalog, IdentityRole
from bedel.students.repository import StudentValues
from bedel.students.schemas import (
    MAX_EMAIL_CHARS,
    MAX_EXTERNAL_ID_CHARS,
    MAX_NAME_CHARS,
    UNSTORABLE_MESSAGE,
    RowError,
    RowProblem,
    is_storable,
)

if TYPE_CHECKING:
    import _csv

_MAX_CHARS: dict[IdentityRole, int] = {
    "name": MAX_NAME_CHARS,
    "email": MAX_EMAIL_CHARS,
    "external_id": MAX_EXTERNAL_ID_CHARS,
}
_QUOTED = re.compile(r'"[^"]*"')
_DELIMITERS = (",", ";", "\t")
# Values kept per column to judge what it holds: enough to see a pattern, little memory.
SAMPLE_SIZE = 50
_ZIP_SIGNATURE = b"PK\x03\x04"
_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0"  # Excel 97-2003 (.xls) and other old Office files
XLS_MESSAGE = "Excel 97-2003 (.xls) files cannot be read: in Excel, save it as 'Excel Workbook (.xlsx)' or 'CSV UTF-8'"


class ImportFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"
    json = "json"
    jsonl = "jsonl"


_BY_NAME = {"csv": ImportFormat.csv, "xlsx": ImportFormat.xlsx, "json": ImportFormat.json}
_BY_NAME |= {"jsonl": ImportFormat.jsonl, "ndjson": ImportFormat.jsonl}
_BY_CONTENT_TYPE = {
    "text/csv": ImportFormat.csv,
    "application/csv": ImportFormat.csv,
    "application/vnd.ms-excel": ImportFormat.csv,  # what Windows browsers send for .csv
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ImportFormat.xlsx,
    "application/json": ImportFormat.json,
    "text/json": ImportFormat.json,
    "application/jsonl": ImportFormat.jsonl,
    "application/x-jsonlines": ImportFormat.jsonl,
    "application/x-ndjson": ImportFormat.jsonl,
    "application/ndjson": ImportFormat.jsonl,
}


def format_from_name(name: str) -> ImportFormat | None:
    """The format a file name's extension (or a bare "csv", "jsonl"...) stands for."""
    suffix = PurePath(name).suffix or "." + name
    return _BY_NAME.get(suffix.lower().removeprefix("."))


def format_from_content_type(content_type: str | None) -> ImportFormat | None:
    media_type = (content_type or "").split(";")[0].strip().lower()
    return _BY_CONTENT_TYPE.get(media_type)


@dataclass
class ParsedFile:
    """Rows keyed by canonical phone, in file order; the last row of a repeated phone wins."""

    rows: dict[str, StudentValues] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    # Each column (or JSON key) in the order first met: how many rows fill it, and some values.
    filled: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[Any]] = field(default_factory=dict)

    def note(self, record: Mapping[str, Any]) -> None:
        for column, value in record.items():
            self.filled.setdefault(column, 0)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            self.filled[column] += 1
            sample = self.samples.setdefault(column, [])
            if len(sample) < SAMPLE_SIZE:
                sample.append(value)


class _RowProblem(Exception):
    """Why a row is not loaded: a code the console words, the English message, and the value at fault."""

    def __init__(self, code: RowProblem, message: str, value: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.value = code, message, value

    def at(self, where: "_Where") -> RowError:
        return RowError(**where, code=self.code, message=self.message, value=self.value)


def parse_students(data: bytes, file_format: ImportFormat, catalog: FieldCatalog) -> ParsedFile:
    match file_format:
        case ImportFormat.csv:
            records = _csv_records(_decode(data), catalog)
        case ImportFormat.xlsx:
            records = _xlsx_records(data, catalog)
        case ImportFormat.json:
            records = _json_records(_decode(data))
        case ImportFormat.jsonl:
            records = _jsonl_records(_decode(data))
    parsed = ParsedFile()
    first_seen: dict[str, _Where] = {}
    # Rows of one file share their keys: resolve each key set's identity columns once.
    layouts: dict[tuple[str, ...], dict[IdentityRole, str] | str] = {}
    for where, record in records:
        if isinstance(record, _RowProblem):
            parsed.errors.append(record.at(where))
            continue
        parsed.note(record)
        keys = tuple(record)
        if keys not in layouts:
            layouts[keys] = _roles(keys, catalog)
        try:
            values = _student_values(record, layouts[keys])
        except _RowProblem as problem:
            parsed.errors.append(problem.at(where))
            continue
        phone = values["phone"]
        if (earlier := first_seen.get(phone)) is not None:
            # Same outcome as importing the rows one by one: the later row replaces the earlier.
            message = f"phone {phone} appears again on {_location(where)}, which replaces this row"
            parsed.errors.append(_RowProblem("repeated_phone", message, phone).at(earlier))
            del parsed.rows[phone]
        first_seen[phone] = where
        parsed.rows[phone] = values
    if not parsed.rows and not parsed.errors:
        raise InvalidInput("the file holds no students", field="file")
    # A table's header was checked up front; JSON objects each name their own keys.
    if file_format in (ImportFormat.json, ImportFormat.jsonl) and not any(
        isinstance(roles, dict) and "phone" in roles for roles in layouts.values()
    ):
        raise InvalidInput(f"no object in the file has a phone: name the key {_synonyms(catalog)}", field="file")
    parsed.errors.sort(key=lambda error: (error.line or 0, error.item or 0))
    return parsed


_Where = dict[str, int]  # {"line": 7} or {"item": 3}, as RowError takes them
_Records = Iterator[tuple[_Where, "Mapping[str, Any] | _RowProblem"]]


def _location(where: _Where) -> str:
    return " ".join(f"{kind} {number}" for kind, number in where.items())


def _decode(data: bytes) -> str:
    if data.startswith(_ZIP_SIGNATURE):
        raise InvalidInput("the file is an Excel workbook or another zip file, not text: name it .xlsx", field="file")
    if data.startswith(_OLE_SIGNATURE):
        raise InvalidInput(XLS_MESSAGE, field="file")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InvalidInput("the file is UTF-16; save it as UTF-8 ('CSV UTF-8' in Excel)", field="file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"the file is not UTF-8 text (byte {exc.start + 1}); save it as UTF-8 ('CSV UTF-8' in Excel)",
            field="file",
        ) from None
    if not text.strip():
        raise InvalidInput("the file is empty", field="file")
    return text


def _csv_records(text: str, catalog: FieldCatalog) -> _Records:
    header_line = _QUOTED.sub("", text.split("\n", 1)[0])
    delimiter = max(_DELIMITERS, key=header_line.count)  # first wins ties: ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        columns = [cell.strip() for cell in next(reader)]
        _check_header(columns, catalog)
        yield from _csv_rows(reader, columns)
    except csv.Error as exc:
        raise InvalidInput(f"line {reader.line_num}: the CSV cannot be read ({exc})", field="file") from None


def _csv_rows(reader: "_csv.Reader", columns: list[str]) -> _Records:
    end = reader.line_num
    for cells in reader:
        # A quoted cell may span lines: a row starts right after the previous one ended.
        where, end = {"line": end + 1}, reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if any(cell.strip() for cell in cells[len(columns) :]):
            yield where, _RowProblem("cell_count", f"{len(cells)} cells, but the header names {len(columns)} columns")
            continue
        # Columns without a header (Excel's trailing separators) are left out.
        yield where, {column: cell for column, cell in zip(columns, cells, strict=False) if column}


def _check_header(columns: list[str], catalog: FieldCatalog) -> None:
    seen: dict[str, None] = {}  # ordered, so messages name columns in header order
    for column in filter(None, columns):
        if column in seen:
            raise InvalidInput(f"the header names the column '{column}' twice", field="file")
        seen[column] = None
    roles = _roles(seen, catalog)
    if isinstance(roles, str):
        raise InvalidInput(roles, field="file")
    if "phone" not in roles:
        found = ", ".join(f"'{column}'" for column in columns if column)
        raise InvalidInput(f"no phone column among {found}: name one {_synonyms(catalog)}", field="file")


def _xlsx_records(data: bytes, catalog: FieldCatalog) -> _Records:
    """The first sheet of a workbook, its first row the header; lines are the sheet's row numbers."""
    if data.startswith(_OLE_SIGNATURE):
        raise InvalidInput(XLS_MESSAGE, field="file")
    try:
        # read_only streams the rows; data_only gives a formula's last computed value.
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, ParseError, OSError):
        raise InvalidInput("the file is not an Excel workbook (.xlsx) that can be read", field="file") from None
    try:
        rows = enumerate(workbook.worksheets[0].iter_rows(values_only=True), start=1)
        header = next(rows, None)
        if header is None:
            raise InvalidInput("the first sheet of the workbook is empty", field="file")
        columns = [_cell(cell) for cell in header[1]]
        names = [str(column).strip() if column is not None else "" for column in columns]
        _check_header(names, catalog)
        for number, cells in rows:
            values = [_cell(cell) for cell in cells]
            if all(value is None for value in values):
                continue
            # Columns without a header are left out, as in a CSV.
            yield {"line": number}, {column: value for column, value in zip(names, values, strict=False) if column}
    except InvalidInput:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, ParseError, OSError) as exc:
        raise InvalidInput(f"the workbook cannot be read ({type(exc).__name__})", field="file") from None
    finally:
        workbook.close()


def _cell(value: Any) -> Any:
    """A cell as the record keeps it: dates as ISO text (a date alone without its midnight), text stripped."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    return value


def _json_records(text: str) -> _Records:
    try:
        payload = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidInput("the file is not valid JSON: nested too deeply", field="file") from None
    except json.JSONDecodeError as exc:
        hint = "; for one object per line name the file .jsonl" if exc.msg == "Extra data" else ""
        raise InvalidInput(
            f"the file is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}{hint}",
            field="file",
        ) from None
    except ValueError as exc:
        raise InvalidInput(f"the file is not valid JSON: {exc}", field="file") from None
    if not isinstance(payload, list):
        raise InvalidInput("a JSON file must hold an array of student objects: [{...}, {...}]", field="file")
    for position, item in enumerate(payload, start=1):
        yield {"item": position}, item if isinstance(item, dict) else _NOT_OBJECT


def _jsonl_records(text: str) -> _Records:
    # Split on "\n" only: JSON strings may hold U+2028 and other characters splitlines() breaks on.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line, parse_constant=_reject_constant)
        except RecursionError:
            yield {"line": number}, _RowProblem("invalid_json", "not valid JSON (nested too deeply)")
            continue
        except ValueError as exc:
            message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            yield {"line": number}, _RowProblem("invalid_json", f"not valid JSON ({message})")
            continue
        yield {"line": number}, item if isinstance(item, dict) else _NOT_OBJECT


_NOT_OBJECT = _RowProblem("not_object", "is not a JSON object")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _roles(keys: Iterable[str], catalog: FieldCatalog) -> dict[IdentityRole, str] | str:
    """Which key holds each identity field, or why the keys are ambiguous."""
    roles: dict[IdentityRole, str] = {}
    for key in keys:
        role = catalog.identity_role(key)
        if role is None:
            continue
        if role in roles:
            return f"'{roles[role]}' and '{key}' are both read as the {role}; rename one"
        roles[role] = key
    return roles


def _student_values(record: Mapping[str, Any], roles: dict[IdentityRole, str] | str) -> StudentValues:
    if isinstance(roles, str):
        raise _RowProblem("ambiguous_columns", roles)
    phone_key = roles.get("phone")
    raw_phone = _text(record[phone_key], "phone") if phone_key is not None else None
    if raw_phone is None:
        raise _RowProblem("no_phone", "no phone")
    try:
        phone = normalize_phone(raw_phone)
    except InvalidPhone as exc:
        raise _RowProblem("invalid_phone", f"invalid phone {raw_phone[:40]!r}: {exc}", raw_phone[:40]) from None
    identity = {role: _text(record[key], role) for role, key in roles.items() if role != "phone"}
    for role, value in identity.items():
        if value is not None and len(value) > _MAX_CHARS[role]:
            raise _RowProblem("too_long", f"{role} is longer than {_MAX_CHARS[role]} characters", role)
    identity_keys = set(roles.values())
    attributes = {
        key.strip(): value
        for key, raw in record.items()
        if key not in identity_keys and key.strip() and (value := _attribute(raw)) is not None
    }
    _check_storable(attributes)
    return StudentValues(
        phone=phone,
        name=identity.get("name"),
        email=identity.get("email"),
        external_id=identity.get("external_id"),
        attributes=attributes,
    )


def _text(value: Any, role: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise _RowProblem("not_text", f"{role} must be text, not a JSON {type(value).__name__}", role)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 5512345678.0 is a phone, not 55123456780 once the dot is dropped
    text = str(value).strip()
    _check_storable(text)
    return text or None


def _attribute(value: Any) -> Any:
    """Cells keep their JSON type (numbers stay numbers); empty ones are left out."""
    if isinstance(value, str):
        return value.strip() or None
    return value


def _check_storable(value: Any) -> None:
    if not is_storable(value):
        raise _RowProblem("unstorable", UNSTORABLE_MESSAGE)


def _synonyms(catalog: FieldCatalog) -> str:
    return ", ".join(f"'{name}'" for name in catalog.identity.get("phone", ())[:4]) + "..."
