"""`bedel students import` and `bedel students fields` in process through typer, on SQLite and PostgreSQL."""

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from bedel.cli import app
from tests.students.workbooks import workbook


@pytest.fixture
def env(clean_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    return {"BEDEL_DATABASE_URL": clean_database, "BEDEL_KNOWLEDGE_INDEX_DIR": str(tmp_path / "index")}


def students(*args: str, env: dict[str, str]) -> Result:
    return CliRunner().invoke(app, ["students", *args], env=env)


class TestImport:
    def test_an_excel_file_loads_and_lists_its_bad_row_and_unknown_columns(self, env: dict[str, str]) -> None:
        rows: list[list[Any]] = [
            ["matricula", "nombre", "celular", "saldo_mxn", "Turno"],
            ["A1", "Ana", "5512345678", 10, "Matutino"],
        ]
        Path("alumnos.xlsx").write_bytes(workbook([*rows, ["A2", "Beto", "abc", 0, "Vespertino"]]))

        result = students("import", "alumnos.xlsx", env=env)

        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines() == [
            "alumnos.xlsx: 1 created, 0 updated, 1 row not loaded",
            "line 3: invalid phone 'abc': a phone may only hold digits, spaces, dashes, dots, parentheses "
            "and a leading +",
            "warning: column 'Turno' was not understood (its values look like text): it is kept under its own name; "
            "to give it a meaning, add it to a concept's columns in BEDEL_FIELDS_FILE",
        ]

    def test_an_old_excel_file_is_refused_with_how_to_save_it(self, env: dict[str, str]) -> None:
        Path("alumnos.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")

        result = students("import", "alumnos.xls", env=env)

        assert result.exit_code == 1
        assert "Excel 97-2003 (.xls) files cannot be read" in result.stderr
        assert "nothing was imported" in result.stderr


class TestFields:
    def test_lists_each_column_with_what_it_serves(self, env: dict[str, str]) -> None:
        Path("alumnos.csv").write_text(
            "Tel,NomAlumno,prom_gral,Fec_Limite,Turno\n5512345678,Ana,9.1,2027-02-10,Matutino\n", encoding="utf-8"
        )
        assert students("import", "alumnos.csv", env=env).exit_code == 0

        result = students("fields", env=env)

        assert result.exit_code == 0, result.output
        lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
        assert lines == [
            "1 students; columns read from the 1 loaded last",
            "(phone) record field 1 students",
            "(name) record field 1 students",
            "(email) record field 0 students",
            "(external_id) record field 0 students",
            "Fec_Limite payment_due (date) 1 students",
            "prom_gral gpa (number) 1 students",
            "Turno not understood (text) 1 students",
            lines[-1],
        ]
        assert lines[-1].startswith("warning: column 'Turno' was not understood")

    def test_a_database_not_migrated_is_exit_4(self, tmp_path: Path) -> None:
        result = students("fields", env={"BEDEL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"})

        assert result.exit_code == 4
        assert "bedel db upgrade" in result.stderr
