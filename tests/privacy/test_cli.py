"""`bedel students export|erase|erasures` in process through typer, on SQLite and PostgreSQL."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from bedel.cli import app

STUDENTS = "matricula,nombre,telefono\nA1,Ana Ruiz,+52 55 1234 5678\nA2,Beto Díaz,+52 55 8765 4321\n"


@pytest.fixture
def env(clean_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    Path("alumnos.csv").write_text(STUDENTS)
    environment = {"BEDEL_DATABASE_URL": clean_database, "BEDEL_KNOWLEDGE_INDEX_DIR": str(tmp_path / "index")}
    assert students("import", "alumnos.csv", env=environment).exit_code == 0
    return environment


def students(*args: str, env: dict[str, str], answer: str | None = None) -> Result:
    return CliRunner().invoke(app, ["students", *args], env=env, input=answer)


class TestExport:
    def test_prints_everything_held_as_json(self, env: dict[str, str]) -> None:
        result = students("export", "55 1234 5678", env=env)

        assert result.exit_code == 0, result.output
        exported = json.loads(result.stdout)
        assert exported["phone"] == "+525512345678"
        assert [row["name"] for row in exported["holdings"]["student"]] == ["Ana Ruiz"]

    def test_an_unknown_phone_fails_with_one_line(self, env: dict[str, str]) -> None:
        result = students("export", "5599999999", env=env)

        assert result.exit_code == 1
        assert result.stderr == "error: nothing is held about the phone +525599999999\n"


class TestErase:
    def test_erases_prints_the_receipt_and_lists_it(self, env: dict[str, str]) -> None:
        erased = students("erase", "5512345678", "--yes", env=env)
        listed = students("erasures", env=env)

        assert erased.exit_code == 0, erased.output
        (receipt,) = [word for word in erased.stdout.split() if word.count("-") == 4]
        assert erased.stdout == f"erased: receipt {receipt} (1 student)\n"
        assert listed.stdout.startswith(receipt) and "command:" in listed.stdout
        assert students("export", "5512345678", env=env).exit_code == 1
        assert students("export", "5587654321", env=env).exit_code == 0

    def test_answering_no_erases_nothing(self, env: dict[str, str]) -> None:
        result = students("erase", "5512345678", env=env, answer="n\n")

        assert result.exit_code == 1
        assert students("export", "5512345678", env=env).exit_code == 0
        assert students("erasures", env=env).stdout == ""
