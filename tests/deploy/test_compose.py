"""deploy/compose.yaml and deploy/.env.example: the stack's shape and every setting documented."""

import os
import re
from pathlib import Path
from typing import Any

import yaml

from bedel.config import Settings, load_settings

DEPLOY = Path(__file__).parents[2] / "deploy"


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


class TestCompose:
    def test_api_and_worker_start_after_the_one_shot_migration(self) -> None:
        services = compose()["services"]
        assert services["migrate"]["command"] == ["db", "upgrade"]
        assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        assert services["api"]["command"] == ["serve"]
        for name in ("api", "worker"):
            assert services[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}

    def test_data_lives_in_a_volume_and_secrets_in_the_env_file(self) -> None:
        document = compose()
        assert "postgres-data:/var/lib/postgresql/data" in document["services"]["postgres"]["volumes"]
        assert "postgres-data" in document["volumes"]
        for name in ("migrate", "api", "worker"):
            assert document["services"][name]["env_file"] == ".env"

    def test_only_the_api_port_is_published(self) -> None:
        services = compose()["services"]
        assert services["api"]["ports"] == ["${BEDEL_PUBLISHED_PORT:-3000}:3000"]
        assert all("ports" not in service for name, service in services.items() if name != "api")

    def test_api_and_worker_keep_the_image_healthcheck_and_expose_metrics_inside(self) -> None:
        services = compose()["services"]
        for name in ("api", "worker"):
            assert "healthcheck" not in services[name]
            assert services[name]["expose"] == ["9464"]


class TestEnvExample:
    def test_every_setting_is_documented(self) -> None:
        text = (DEPLOY / ".env.example").read_text(encoding="utf-8")
        listed = set(re.findall(r"^#? ?(BEDEL_[A-Z0-9_]+)=", text, flags=re.MULTILINE))
        expected = {f"BEDEL_{name.upper()}" for name in Settings.model_fields}
        assert listed - {"BEDEL_PUBLISHED_PORT"} == expected

    def test_filled_in_it_starts_and_left_empty_it_refuses_production(self, tmp_path: Path, monkeypatch: Any) -> None:
        for name in os.environ:
            if name.startswith(("BEDEL_", "OPENAI_")):
                monkeypatch.delenv(name)
        monkeypatch.chdir(tmp_path)
        template = (DEPLOY / ".env.example").read_text(encoding="utf-8")
        (tmp_path / ".env").write_text(template, encoding="utf-8")
        # Left empty, no key is in settings: `bedel serve` refuses production until one is made with
        # `bedel keys create` (tests/test_cli.py).
        assert not load_settings().auth_enabled

        filled = template.replace("BEDEL_API_KEYS=\n", "BEDEL_API_KEYS=client-key\n")
        (tmp_path / ".env").write_text(filled, encoding="utf-8")
        settings = load_settings()
        assert settings.auth_enabled
        assert settings.llm_base_url is None
