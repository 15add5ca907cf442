"""The Grafana dashboard queries exactly the metrics Bedel exports."""

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import bedel.ops.metrics  # noqa: F401  (registers Bedel's metrics)

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "bedel.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_names() -> set[str]:
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        if family.name.startswith("bedel_")
        for suffix in SUFFIXES.get(family.type, ())
    }


class TestDashboard:
    def test_every_queried_metric_is_exported(self) -> None:
        dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
        queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
        queried = {name for query in queries for name in re.findall(r"\bbedel_[a-z_]+", query)}
        assert queried
        assert queried <= exported_names(), queried - exported_names()

    def test_every_exported_metric_has_a_panel(self) -> None:
        text = DASHBOARD.read_text(encoding="utf-8")
        families = {family.name for family in REGISTRY.collect() if family.name.startswith("bedel_")}
        assert {family for family in families if family not in text} == set()
