"""docs/operations.md maps every start-up exit code and log event of `bedel` to its fix."""

import re
from pathlib import Path

from bedel import cli

ROOT = Path(__file__).parents[2]
RUNBOOK = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")


class TestRunbook:
    def test_every_exit_code_has_a_row(self) -> None:
        codes = {value for name, value in vars(cli).items() if name.startswith("EXIT_")}
        rows = {int(code) for code in re.findall(r"^\| (\d+)[ ,|]", RUNBOOK, flags=re.MULTILINE)}
        assert codes <= rows, codes - rows

    def test_every_start_up_event_is_named(self) -> None:
        source = (ROOT / "src" / "bedel" / "cli.py").read_text(encoding="utf-8")
        # `bedel eval` reports its own file errors to the person running it; it never starts a pod.
        events = {e for e in re.findall(r"fail\(\s*EXIT_\w+,\s*\"(\w+)\"", source) if not e.startswith("eval_")}
        assert {"config_error", "database_unreachable", "migrations_pending"} <= events
        assert {event for event in events if f"`{event}`" not in RUNBOOK} == set()
