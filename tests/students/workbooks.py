"""Excel workbooks made in the test, as a school's system would export them."""

import io
from collections.abc import Sequence
from typing import Any

import openpyxl

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def workbook(rows: Sequence[Sequence[Any]], *, sheets: int = 1) -> bytes:
    """A .xlsx whose first sheet holds the rows (None leaves a cell empty); other sheets hold noise."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(list(row))
    for number in range(1, sheets):
        book.create_sheet(f"Hoja {number + 1}").append(["telefono", "nombre"])
    data = io.BytesIO()
    book.save(data)
    return data.getvalue()
