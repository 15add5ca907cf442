"""The Prometheus alerting rules query only metrics Bedel exports and point at a runbook entry that exists."""

import re
from pathlib import Path

import yaml

from tests.deploy.test_grafana import exported_names

ROOT = Path(__file__).parents[2]
RULES = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yaml").read_text(encoding="utf-8"))
RUNBOOK = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")


def rules() -> list[dict[str, object]]:
    return [rule for group in RULES["groups"] for rule in group["rules"]]


class TestAlerts:
    def test_every_rule_queries_exported_metrics(self) -> None:
        queried = {name for rule in rules() for name in re.findall(r"\bbedel_[a-z_]+", str(rule["expr"]))}
        assert queried
        assert queried <= exported_names(), queried - exported_names()

    def test_every_rule_names_a_runbook_section_that_exists(self) -> None:
        anchors = {
            re.sub(r"[^a-z0-9 -]", "", heading.lower()).strip().replace(" ", "-")
            for heading in re.findall(r"^#+ (.+)$", RUNBOOK, flags=re.MULTILINE)
        }
        for rule in rules():
            annotations = rule["annotations"]
            assert isinstance(annotations, dict)
            assert annotations["runbook"].partition("#")[2] in anchors, rule["alert"]

    def test_the_budget_warns_at_eighty_percent(self) -> None:
        warning = next(rule for rule in rules() if rule["alert"] == "BedelTokenBudgetNearlySpent")
        assert str(warning["expr"]).endswith(">= 0.8")
