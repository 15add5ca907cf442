"""deploy/k8s: every manifest valid against the Kubernetes schemas (offline), the overlay renders, and its
pods are shaped as docs/operations.md says."""

import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bedel.config import Settings
from bedel.ops.lifecycle import GRACE_S

# Deploy tools: kubectl renders the overlay, kubernetes-validate checks every manifest.
pytestmark = pytest.mark.slow

K8S = Path(__file__).parents[2] / "deploy" / "k8s"
# The oldest Kubernetes release still supported by the big managed services.
KUBERNETES_VERSION = "1.30.0"
Manifest = dict[str, Any]


@cache
def rendered() -> tuple[Manifest, ...]:
    kubectl = Path(sys.executable).parent / "kubectl"
    result = subprocess.run(
        [kubectl, "kustomize", K8S / "overlays" / "production"], capture_output=True, text=True, check=True
    )
    return tuple(yaml.safe_load_all(result.stdout))


def find(kind: str, name: str) -> Manifest:
    return next(m for m in rendered() if m["kind"] == kind and m["metadata"]["name"] == name)


def pod_spec(name: str) -> Manifest:
    return find("Deployment", name)["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def manifest_files() -> list[Path]:
    return [p for p in sorted(K8S.rglob("*.yaml")) if p.name != "kustomization.yaml"]


def validation_error(manifest: Manifest) -> str | None:
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{manifest['kind']}/{manifest['metadata']['name']}: {exc.message}"
    return None


class TestManifests:
    @pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
    def test_each_file_is_valid(self, path: Path) -> None:
        for manifest in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            assert validation_error(manifest) is None

    def test_the_rendered_overlay_is_valid(self) -> None:
        kinds = sorted(m["kind"] for m in rendered())
        assert kinds == sorted(
            [
                "Namespace",
                "ConfigMap",
                "Service",
                "Deployment",
                "Deployment",
                "Job",
                "Ingress",
                "HorizontalPodAutoscaler",
                "PodDisruptionBudget",
            ]
        )
        assert [error for m in rendered() if (error := validation_error(m))] == []

    def test_the_validator_rejects_a_misspelt_field(self) -> None:
        broken = {**find("PodDisruptionBudget", "bedel-api")}
        broken["spec"] = {**broken["spec"], "minAvailabel": 1}
        assert validation_error(broken) is not None


class TestPods:
    def test_api_probes_split_liveness_from_readiness(self) -> None:
        api = pod_spec("bedel-api")["containers"][0]
        assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert api["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert find("Deployment", "bedel-api")["spec"]["replicas"] == 2

    def test_the_worker_is_probed_for_liveness_only_and_scraped_like_the_api(self) -> None:
        worker, api = (
            find("Deployment", "bedel-worker")["spec"]["template"],
            find("Deployment", "bedel-api")["spec"]["template"],
        )
        container = worker["spec"]["containers"][0]
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert "readinessProbe" not in container  # no Service sends it traffic
        config = next(m for m in rendered() if m["kind"] == "ConfigMap")["data"]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert ports == {"http": int(config["BEDEL_PORT"]), "metrics": int(config["BEDEL_METRICS_PORT"])}
        assert worker["metadata"]["annotations"] == api["metadata"]["annotations"]
        assert worker["metadata"]["annotations"]["prometheus.io/port"] == config["BEDEL_METRICS_PORT"]
        # Running jobs get GRACE_S to finish after SIGTERM.
        assert worker["spec"]["terminationGracePeriodSeconds"] > GRACE_S

    def test_every_pod_waits_for_the_schema_the_job_migrates(self) -> None:
        job = find("Job", "bedel-migrate")["spec"]["template"]["spec"]
        assert job["containers"][0]["args"] == ["db", "upgrade"]
        for name in ("bedel-api", "bedel-worker"):
            assert pod_spec(name)["initContainers"][0]["args"][:2] == ["db", "wait"]

    def test_every_container_is_unprivileged_read_only_and_sized(self) -> None:
        pods = [
            pod_spec("bedel-api"),
            pod_spec("bedel-worker"),
            find("Job", "bedel-migrate")["spec"]["template"]["spec"],
        ]
        for pod in pods:
            assert pod["securityContext"]["runAsNonRoot"] is True
            for container in pod.get("initContainers", []) + pod["containers"]:
                assert container["securityContext"]["readOnlyRootFilesystem"] is True
                assert container["securityContext"]["allowPrivilegeEscalation"] is False
                assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
                assert {"cpu", "memory"} <= container["resources"]["limits"].keys()

    def test_the_grace_period_covers_the_drain_and_in_flight_answers(self) -> None:
        config = find("ConfigMap", next(m["metadata"]["name"] for m in rendered() if m["kind"] == "ConfigMap"))
        drain = float(config["data"]["BEDEL_SHUTDOWN_DRAIN_S"])
        assert pod_spec("bedel-api")["terminationGracePeriodSeconds"] > drain + GRACE_S

    def test_the_ingress_publishes_the_api_and_never_the_metrics(self) -> None:
        paths = find("Ingress", "bedel-api")["spec"]["rules"][0]["http"]["paths"]
        assert [p["backend"]["service"]["port"]["name"] for p in paths] == ["http"]

    def test_configuration_names_only_real_settings(self) -> None:
        config = next(m for m in rendered() if m["kind"] == "ConfigMap")["data"]
        secret = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text(encoding="utf-8"))["stringData"]
        settings = {f"BEDEL_{name.upper()}" for name in Settings.model_fields}
        assert (config.keys() | secret.keys()) <= settings
        assert {"BEDEL_DATABASE_URL", "BEDEL_API_KEYS", "BEDEL_LLM_API_KEY"} <= secret.keys()
