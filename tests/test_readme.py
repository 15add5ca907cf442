"""README.md documents every setting and shows exactly the two set-up commands."""

import re
from pathlib import Path

from bedel.config import Settings

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


class TestReadme:
    def test_every_setting_is_documented(self) -> None:
        documented = set(re.findall(r"`(BEDEL_[A-Z0-9_]+)`", README))
        expected = {f"BEDEL_{name.upper()}" for name in Settings.model_fields}
        assert expected <= documented, expected - documented
        assert documented - expected <= {"BEDEL_TEST_POSTGRES_URL"}, documented - expected

    def test_set_up_is_make_run_and_make_test(self) -> None:
        block = README.split("## Set-up: two commands", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
        commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
        assert commands == ["make run", "make test"]
        ci = (Path(__file__).parents[1] / ".ci" / "run").read_text(encoding="utf-8")
        assert "make test" in ci
