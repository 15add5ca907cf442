"""`bedel kb add` and `bedel eval` on a migrated SQLite file: in process through typer, and as a subprocess."""

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from bedel import migrate
from bedel.cli import app
from tests.knowledge.documents import CALENDAR, FEES, certificates_docx
from tests.test_cli import run_bedel

# A log line as structlog's development renderer or the JSON renderer writes it.
_LOG_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2}[ T]\S+ \[|\{)")


def kb_add(*paths: Path | str, env: dict[str, str]) -> Result:
    return CliRunner().invoke(app, ["kb", "add", *map(str, paths)], env=env)


def report(output: str) -> list[str]:
    """The lines of `kb add`'s report, without log lines."""
    return [line for line in output.strip().splitlines() if not _LOG_LINE.match(line)]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    # Documents are named by their path from the current folder.
    monkeypatch.chdir(tmp_path)
    url = f"sqlite+aiosqlite:///{tmp_path / 'bedel.db'}"
    migrate.upgrade(url)
    return {"BEDEL_DATABASE_URL": url, "BEDEL_KNOWLEDGE_INDEX_DIR": str(tmp_path / "index")}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "documentos"
    (root / "finanzas" / "2027").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "calendario.md").write_text(CALENDAR, encoding="utf-8")
    (root / "finanzas" / "2027" / "colegiaturas.md").write_text(FEES, encoding="utf-8")
    (root / "finanzas" / "tramites.docx").write_bytes(certificates_docx())
    (root / ".borrador.md").write_text("# Borrador\n\nNo publicar.", encoding="utf-8")
    (root / ".git" / "notas.md").write_text("# Notas\n\nInternas.", encoding="utf-8")
    (root / "finanzas" / "~$tramites.docx").write_bytes(b"lock file of an open Word document")
    (root / "finanzas" / "presupuesto.xlsx").write_bytes(b"PK\x03\x04")
    (root / "logo.png").write_bytes(b"\x89PNG")
    return root


class TestKbAdd:
    def test_a_folder_is_read_recursively_skipping_hidden_and_unsupported_files(
        self, tmp_path: Path, env: dict[str, str], folder: Path
    ) -> None:
        result = kb_add(folder, env=env)

        assert result.exit_code == 0, result.output
        assert report(result.stdout) == [
            "documentos/calendario.md: added",
            "documentos/finanzas/2027/colegiaturas.md: added",
            "documentos/finanzas/tramites.docx: added",
            "3 added, 0 replaced, 0 unchanged, 0 failed",
        ]

    def test_adding_saves_the_search_index_for_the_server(
        self, tmp_path: Path, env: dict[str, str], folder: Path
    ) -> None:
        kb_add(folder, env=env)

        saved = [path for path in (tmp_path / "index").iterdir() if not path.name.startswith(".")]
        assert len(saved) == 1 and saved[0].is_dir()

    def test_a_bad_file_given_explicitly_is_reported_and_exits_1_while_the_others_load(
        self, tmp_path: Path, env: dict[str, str]
    ) -> None:
        (tmp_path / "colegiaturas.md").write_text(FEES, encoding="utf-8")
        (tmp_path / "roto.pdf").write_bytes(b"%PDF-1.4 damaged")
        (tmp_path / "notas.xlsx").write_bytes(b"PK\x03\x04")
        (tmp_path / "calendario.md").write_text(CALENDAR, encoding="utf-8")
        paths = [str(tmp_path / name) for name in ("colegiaturas.md", "roto.pdf", "notas.xlsx", "calendario.md")]

        result = kb_add(*paths, tmp_path / "no-existe.md", env=env)

        assert result.exit_code == 1
        lines = report(result.stdout)
        assert lines[0] == "colegiaturas.md: added"
        assert lines[1].startswith("roto.pdf: the PDF cannot be read")
        assert lines[2].startswith("notas.xlsx: unsupported file type .xlsx")
        assert lines[3] == "calendario.md: added"
        assert "no-existe.md" in lines[4]
        assert lines[-1] == "2 added, 0 replaced, 0 unchanged, 3 failed"
        assert result.exception is None or isinstance(result.exception, SystemExit)

    def test_re_adding_the_same_files_reports_unchanged_and_a_changed_one_replaced(
        self, tmp_path: Path, env: dict[str, str], folder: Path
    ) -> None:
        kb_add(folder, env=env)
        (folder / "calendario.md").write_text(CALENDAR + "\nLas clases terminan el 28 de mayo.\n", encoding="utf-8")

        result = kb_add(folder, env=env)

        assert result.exit_code == 0, result.output
        assert report(result.stdout) == [
            "documentos/calendario.md: replaced",
            "documentos/finanzas/2027/colegiaturas.md: unchanged",
            "documentos/finanzas/tramites.docx: unchanged",
            "0 added, 1 replaced, 2 unchanged, 0 failed",
        ]

    @pytest.mark.slow
    def test_stdout_holds_only_the_report_and_logs_go_to_stderr(self, tmp_path: Path, env: dict[str, str]) -> None:
        (tmp_path / "calendario.md").write_text(CALENDAR, encoding="utf-8")

        result = run_bedel("kb", "add", "calendario.md", env=env, cwd=tmp_path)

        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines() == [
            "calendario.md: added",
            "1 added, 0 replaced, 0 unchanged, 0 failed",
        ]
        assert all(json.loads(line) for line in result.stderr.strip().splitlines())


class TestEval:
    @pytest.mark.slow
    def test_eval_prints_the_rates_and_writes_json(self, tmp_path: Path, env: dict[str, str], folder: Path) -> None:
        assert kb_add(folder, env=env).exit_code == 0
        cases = [
            {
                "id": "recargo",
                "question": "¿cuánto es el recargo si pago tarde?",
                "expected_document": "finanzas/2027/colegiaturas.md",
                "expected_facts": [r"10\s*%"],
                "forbidden_facts": [r"20\s*%"],
            },
            {
                "id": "estacionamiento",
                "question": "¿dónde queda el estacionamiento para bicicletas?",
                "expected_document": None,
                "expected_facts": ["no tengo esa informaci[oó]n"],
            },
        ]
        (tmp_path / "cases.jsonl").write_text("\n".join(json.dumps(c) for c in cases) + "\n", encoding="utf-8")

        result = run_bedel("eval", "cases.jsonl", "--output", "report.json", env=env, cwd=tmp_path)

        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[:4] == [
            "cases: 2",
            "retrieval hit rate: 100.0%",
            "answer fact rate: 100.0%",
            "forbidden facts: 0",
        ]
        report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
        assert (report["cases"], report["hit_rate"], report["fact_rate"], report["forbidden_violations"]) == (
            2,
            1.0,
            1.0,
            0,
        )
        assert [r["id"] for r in report["results"]] == ["recargo", "estacionamiento"]
        assert report["results"][0]["sources"] == ["documentos/finanzas/2027/colegiaturas.md"]


class TestNames:
    def test_a_file_added_alone_after_its_folder_replaces_its_old_version(
        self, tmp_path: Path, env: dict[str, str], folder: Path
    ) -> None:
        kb_add(folder, env=env)
        (folder / "calendario.md").write_text(CALENDAR + "\nLas clases terminan el 28 de mayo.\n", encoding="utf-8")

        result = kb_add(folder / "calendario.md", env=env)

        assert report(result.stdout)[0] == "documentos/calendario.md: replaced"

    def test_two_folders_files_of_the_same_name_stay_two_documents(self, tmp_path: Path, env: dict[str, str]) -> None:
        for name, text in (("becas", FEES), ("biblioteca", CALENDAR)):
            (tmp_path / name).mkdir()
            (tmp_path / name / "README.md").write_text(text, encoding="utf-8")

        result = kb_add(tmp_path / "becas", tmp_path / "biblioteca", env=env)

        assert report(result.stdout)[-1] == "2 added, 0 replaced, 0 unchanged, 0 failed"
