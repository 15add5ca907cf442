"""Settings that cannot work (voice notes, bursts, codes by email) refuse to start, in one line naming the setting."""

import os
from pathlib import Path

import pytest

from bedel.config import ConfigError, check_server_processes, load_settings


@pytest.fixture(autouse=True)
def bare_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in os.environ:
        if name.startswith(("BEDEL_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env


class TestTranscription:
    def test_a_model_without_a_server_or_a_key_refuses_to_start(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("BEDEL_TRANSCRIPTION_MODEL", "whisper-1")

        with pytest.raises(ConfigError, match=r"^BEDEL_TRANSCRIPTION_API_KEY: "):
            load_settings()

    def test_a_local_server_needs_no_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("BEDEL_TRANSCRIPTION_MODEL", "Systran/faster-whisper-small")
        monkeypatch.setenv("BEDEL_TRANSCRIPTION_BASE_URL", "http://localhost:8000/v1")

        assert load_settings().transcription_base_url == "http://localhost:8000/v1"


class TestBurstWindow:
    @pytest.mark.parametrize("value", ["-1", "11", "tres"])
    def test_a_window_outside_zero_to_ten_seconds_is_refused(self, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
        monkeypatch.setenv("BEDEL_WHATSAPP_BURST_WINDOW_S", value)

        with pytest.raises(ConfigError, match=r"^BEDEL_WHATSAPP_BURST_WINDOW_S: .*fix BEDEL_WHATSAPP_BURST_WINDOW_S$"):
            load_settings()


class TestBudgetsAndRetention:
    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("BEDEL_TOKEN_BUDGET_STUDENT_DAILY", "-1"),
            ("BEDEL_TOKEN_BUDGET_INSTITUTION_MONTHLY", "mucho"),
            ("BEDEL_RETENTION_DAYS", "-30"),
            ("BEDEL_CAMPAIGN_RETENTION_DAYS", "1.5"),
            ("BEDEL_JOB_RETENTION_DAYS", "99999"),
            ("BEDEL_PRIVACY_NOTICE", "  "),
        ],
    )
    def test_a_nonsense_value_is_refused(self, monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
        monkeypatch.setenv(name, value)

        with pytest.raises(ConfigError, match=rf"^{name}: .*fix {name}$"):
            load_settings()

    def test_finished_jobs_are_kept_while_meta_may_redeliver(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("BEDEL_JOB_RETENTION_DAYS", "3")

        with pytest.raises(ConfigError, match=r"^BEDEL_JOB_RETENTION_DAYS: .*use 7 or more, or 0 to keep them"):
            load_settings()

    def test_the_defaults(self) -> None:
        settings = load_settings()

        assert (settings.token_budget_student_daily, settings.token_budget_institution_monthly) == (100_000, 0)
        assert (settings.retention_days, settings.job_retention_days, settings.campaign_retention_days) == (0, 30, 0)
        assert settings.privacy_notice is None


class TestIdentityVerificationByEmailCode:
    def test_codes_by_email_without_smtp_refuse_to_start(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("BEDEL_IDENTITY_VERIFICATION_FIELD", "email_code")

        with pytest.raises(ConfigError, match=r"^BEDEL_SMTP_HOST: BEDEL_IDENTITY_VERIFICATION_FIELD=email_code "):
            load_settings()

    def test_codes_by_email_start_with_smtp(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("BEDEL_IDENTITY_VERIFICATION_FIELD", "email_code")
        monkeypatch.setenv("BEDEL_SMTP_HOST", "smtp.example.edu")
        monkeypatch.setenv("BEDEL_SMTP_FROM", "avisos@example.edu")

        assert load_settings().identity_verification_field == "email_code"


class TestServerProcesses:
    def test_development_serves_with_one_process(self) -> None:
        assert load_settings().server_processes == 1

    def test_production_serves_with_every_cpu_the_process_may_use(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("BEDEL_ENV", "production")
        monkeypatch.setenv("BEDEL_API_KEYS", "k1")

        assert load_settings().server_processes == len(os.sched_getaffinity(0))

    def test_the_setting_overrides_the_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("BEDEL_WORKERS", "3")

        assert load_settings().server_processes == 3

    def test_several_processes_refuse_limits_counted_in_memory(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("BEDEL_WORKERS", "2")

        with pytest.raises(ConfigError, match=r"^BEDEL_RATE_LIMIT_STORAGE_URL: memory:// .* 2 worker processes"):
            check_server_processes(load_settings())

    def test_several_processes_share_limits_in_redis(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("BEDEL_WORKERS", "2")
        monkeypatch.setenv("BEDEL_RATE_LIMIT_STORAGE_URL", "redis://127.0.0.1:6379")

        check_server_processes(load_settings())

    def test_one_process_keeps_limits_in_memory(self) -> None:
        check_server_processes(load_settings())
