"""Cells of the CSV and Excel files Bedel hands out: one rule, so no export can forget it.

A spreadsheet runs a cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return as a
formula (OWASP's "CSV injection"): a student named `=HYPERLINK("http://evil","Ver")` would become
a link, or worse, in the staff member's spreadsheet. Such a cell gets an apostrophe before it, which
spreadsheets show as text and do not display."""

from datetime import date, datetime

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: object) -> str:
    """The text of one cell, safe to open in a spreadsheet; None is an empty cell."""
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, date | datetime) else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text
