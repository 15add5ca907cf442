"""Answer quality on fictional institutions, each loaded as a new school would load it.

Run: `.venv/bin/python bench/eval/run.py [NAME...]` (writes bench/eval/RESULTS.md).

Each folder of bench/eval/institutions/ holds a `documents/` folder, a student list
(`students.csv`, `.json` or `.jsonl`) and `cases.jsonl`. For each institution, on a new SQLite
database and index in a temporary folder and with no other setting (the offline engine and
every default, as on a fresh install), the README's own commands run in its folder:

    bedel db upgrade
    bedel students import students.csv
    bedel kb add documents
    bedel eval cases.jsonl --output report.json

Only the per-phone rate limit is raised: the cases ask as a few students many times a minute.
RESULTS.md gets the import and indexing summaries, the targets of issue 16, a table by kind of
case, and every case that missed something.
"""

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bedel.knowledge.evaluation import EvalReport, format_kinds, format_misses

HERE = Path(__file__).resolve().parent
INSTITUTIONS = HERE / "institutions"
RESULTS = HERE / "RESULTS.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="institutions to run (default: all)")
    parser.add_argument("--institutions", type=Path, default=INSTITUTIONS, help="folder of institutions")
    parser.add_argument("--results", type=Path, default=RESULTS, help="Markdown file to write")
    args = parser.parse_args()
    folders = sorted(path for path in args.institutions.iterdir() if path.is_dir())
    if args.names:
        folders = [folder for folder in folders if folder.name in args.names]
    runs = []
    for folder in folders:
        loading, report = evaluate(folder)
        runs.append((folder.name, loading, report))
        print(f"{folder.name}: {report.cases} cases, facts {report.fact_rate:.1%}, hits {report.hit_rate:.1%}")
    args.results.write_text(results_page(runs), encoding="utf-8")
    print(f"wrote {args.results}")


def evaluate(folder: Path) -> tuple[list[str], EvalReport]:
    """Load one institution into a fresh Bedel and run its cases: (what loading printed, the report)."""
    [students] = folder.glob("students.*")
    with tempfile.TemporaryDirectory(prefix=f"bedel-eval-{folder.name}-") as scratch:
        env = {name: value for name, value in os.environ.items() if not name.startswith(("BEDEL_", "OPENAI_"))}
        env |= {
            "BEDEL_DATABASE_URL": f"sqlite+aiosqlite:///{scratch}/bedel.db",
            "BEDEL_KNOWLEDGE_INDEX_DIR": f"{scratch}/index",
            "BEDEL_RATE_LIMIT_PER_PHONE": "1000/minute",
        }
        report = Path(scratch) / "report.json"
        bedel(folder, env, "db", "upgrade")
        imported = bedel(folder, env, "students", "import", students.name).splitlines()
        indexed = bedel(folder, env, "kb", "add", "documents").splitlines()[-1]
        bedel(folder, env, "eval", "cases.jsonl", "--output", str(report))
        return [*imported, indexed], EvalReport.model_validate_json(report.read_text(encoding="utf-8"))


def bedel(folder: Path, env: dict[str, str], *command: str) -> str:
    """Run one `bedel` command in the institution's folder and return what it printed; stop the run if it failed.

    From there no .env of the checkout is read, and documents are named `documents/...`.
    """
    done = subprocess.run(
        [sys.executable, "-m", "bedel.cli", *command], env=env, cwd=folder, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"{folder.name}: `bedel {' '.join(command)}` failed:\n{done.stdout}{done.stderr}")
    return done.stdout.strip()


def targets(report: EvalReport) -> list[tuple[str, str, str, bool]]:
    """Issue 16's targets, offline and for each institution on its own: measure, target, result, met."""
    total = report.total
    handoffs = f"{total.handoffs_recognised}/{total.handoffs_expected}"
    unknown = f"{total.unknown_answered}/{total.unknown_asked}"
    return [
        ("answer facts", "≥ 90 %", f"{report.fact_rate:.1%}", report.fact_rate >= 0.9),
        ("retrieval hits", "≥ 95 %", f"{report.hit_rate:.1%}", report.hit_rate >= 0.95),
        ("forbidden facts", "0", str(report.forbidden_violations), report.forbidden_violations == 0),
        ("handoffs recognised", "100 %", handoffs, report.handoff_rate in (None, 1.0)),
        ("unknown numbers answered from documents", "100 %", unknown, report.unknown_answered_rate in (None, 1.0)),
    ]


def results_page(runs: list[tuple[str, list[str], EvalReport]]) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Answer quality on fictional institutions",
        "",
        f"Written by `.venv/bin/python bench/eval/run.py` on {now}, code at commit {commit.stdout.strip() or '?'}.",
        "Each institution is loaded on its own into a fresh SQLite database with default settings",
        "(offline engine) by `bedel students import`, `bedel kb add` and `bedel eval`; see",
        "[README.md](README.md) for the cases and their kinds.",
        "",
        "## Targets (issue 16)",
        "",
        "| measure | target | " + " | ".join(name for name, _, _ in runs) + " |",
        "|---|---|" + "--:|" * len(runs),
    ]
    rows = zip(*(targets(report) for _, _, report in runs), strict=True)
    for row in rows:
        measure, target = row[0][:2]
        cells = [f"{result} {'met' if met else '**missed**'}" for _, _, result, met in row]
        lines.append(f"| {measure} | {target} | " + " | ".join(cells) + " |")
    for name, loading, report in runs:
        misses = format_misses(report)
        lines += ["", f"## {name}", "", *(f"- {line}" for line in loading), "", *format_kinds(report), ""]
        lines += [
            f"<details><summary>Cases that missed something ({len(misses)})</summary>",
            "",
            *misses,
            "",
            "</details>",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
