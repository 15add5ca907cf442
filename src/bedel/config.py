"""Settings: one `Settings` object built from BEDEL_* environment variables and `.env`."""

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError


class Environment(StrEnum):
    development = "development"
    production = "production"


class LLMProvider(StrEnum):
    offline = "offline"
    openai_compatible = "openai_compatible"


class SMTPSecurity(StrEnum):
    starttls = "starttls"
    tls = "tls"
    none = "none"


class ReengageFallback(StrEnum):
    """What a free-form message becomes once the student's 24-hour window has closed."""

    template = "template"
    sms = "sms"
    email = "email"
    none = "none"


class ConfigError(Exception):
    """A setting that prevents start-up, with the fix in the message."""


KeyList = Annotated[list[SecretStr], NoDecode]
ASYNC_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
# How long Meta keeps redelivering a webhook it could not deliver.
VENDOR_REDELIVERY_DAYS = 7


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BEDEL_", env_file=".env", extra="ignore", frozen=True, populate_by_name=True
    )

    env: Environment = Environment.development
    database_url: str = "sqlite+aiosqlite:///./data/bedel.db"
    host: str | None = None
    port: int = Field(default=3000, ge=1, le=65535)
    metrics_port: int = Field(default=9464, ge=1, le=65535)
    shutdown_drain_s: float = Field(default=0.0, ge=0)
    # Server processes sharing the port (`bedel serve`); unset: every CPU this process may use in
    # production, one in development (reloads and debuggers want one).
    workers: int | None = Field(default=None, ge=1, le=64)
    api_keys: KeyList = []
    staff_api_keys: KeyList = []

    llm_provider: LLMProvider = LLMProvider.offline
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("BEDEL_LLM_API_KEY", "OPENAI_API_KEY")
    )
    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = Field(default=30.0, gt=0)
    llm_max_retries: int = Field(default=2, ge=0)
    llm_breaker_threshold: int = Field(default=5, ge=1)
    llm_breaker_reset_s: float = Field(default=30.0, gt=0)

    temperature: float = Field(default=0.2, ge=0, le=2)
    max_output_tokens: int = Field(default=500, ge=1)
    history_token_budget: int = Field(default=1500, ge=0)
    language: str = "es"
    institution_name: str = "la institución"
    contact: str = "la oficina de servicios escolares"
    instructions_file: Path | None = None
    fields_file: Path | None = None

    knowledge_index_dir: Path = Path("./data/index")
    knowledge_top_k: int = Field(default=4, ge=1, le=20)
    knowledge_min_relevance: float = Field(default=0.3, ge=0, le=1)
    knowledge_refresh_s: float = Field(default=5.0, gt=0)
    embedding_model: str | None = None
    embedding_base_url: str | None = None
    # Voice notes are transcribed only when a model is set (any Whisper-compatible server).
    transcription_model: str | None = None
    transcription_base_url: str | None = None
    transcription_api_key: SecretStr | None = None

    rate_limit_per_phone: str = "20/minute"
    rate_limit_per_key: str = "600/minute"
    rate_limit_storage_url: str = "memory://"

    # Background jobs (replies to WhatsApp and Twilio messages): see docs/decisions/0007.
    jobs_in_process: bool = True
    worker_concurrency: int = Field(default=8, ge=1, le=256)
    job_max_attempts: int = Field(default=6, ge=1)
    job_retry_base_s: float = Field(default=2.0, gt=0)
    # A job or a conversation's turn claimed by a process that died waits this long (decisions 0001, 0007).
    lease_s: float = Field(default=60.0, gt=0)

    # A channel is on when all of its secrets are set.
    public_url: str | None = None
    whatsapp_verify_token: SecretStr | None = None
    whatsapp_app_secret: SecretStr | None = None
    whatsapp_access_token: SecretStr | None = None
    whatsapp_phone_number_id: str | None = None
    whatsapp_api_base: str = "https://graph.facebook.com/v23.0"
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None
    twilio_api_base: str = "https://api.twilio.com"
    # A Twilio number that sends SMS (campaigns on the `sms` channel).
    twilio_sms_from: str | None = None
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str | None = None
    smtp_security: SMTPSecurity = SMTPSecurity.starttls

    # Messages of one phone that arrive within this quiet window get one answer (0: each its own).
    whatsapp_burst_window_s: float = Field(default=3.0, ge=0, le=10)
    # Media larger than this is not downloaded (checked before downloading).
    media_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1, le=100 * 1024 * 1024)

    # Campaigns (bulk messages): see docs/decisions/0010. Rates are messages per second
    # across all workers together; 0 sends as fast as the workers can.
    campaign_rate_whatsapp: float = Field(default=80.0, ge=0)
    campaign_rate_sms: float = Field(default=10.0, ge=0)
    campaign_rate_email: float = Field(default=10.0, ge=0)
    campaign_max_attempts: int = Field(default=5, ge=1)
    campaign_retry_base_s: float = Field(default=5.0, gt=0)
    # At least 25 s: a send may start at 60 % of a lease that failed to renew, and clients time out after 10 s.
    campaign_lease_s: float = Field(default=60.0, ge=25)

    # A WhatsApp user known only by a business-scoped id proves who they are with their
    # student id and this fact of their record (a field catalog concept, a column, or "email"),
    # or with "email_code" a one-time code sent to the email on their record (needs SMTP).
    identity_verification_field: str = Field(default="birth_date", min_length=1)
    identity_verification_attempts: int = Field(default=3, ge=1, le=20)
    identity_verification_cooldown_s: float = Field(default=900.0, gt=0, le=86_400)

    # Past the 24-hour window (docs/decisions/0012): a template, an SMS, an email, or nothing
    # (staff replies are refused).
    reengage_fallback: ReengageFallback = ReengageFallback.none
    whatsapp_reengage_template: str | None = None
    whatsapp_reengage_language: str = "es_MX"
    twilio_reengage_content_sid: str | None = None

    # The staff console (docs/decisions/0014): a session unused this long ends; the first
    # lock-out after wrong passwords lasts this long, each further one twice as long.
    console_session_idle_minutes: float = Field(default=30.0, gt=0, le=7 * 24 * 60)
    console_lockout_minutes: float = Field(default=5.0, gt=0, le=24 * 60)
    # Live pages (inbox, a conversation) ask the database for changes this often, over one
    # Server-Sent Events stream that ends after console_live_stream_s and is opened again.
    console_live_poll_s: float = Field(default=2.0, gt=0, le=60)
    console_live_stream_s: float = Field(default=300.0, gt=0, le=3600)
    # What each model costs, for the dashboard's estimate: {"model": [input, output]} in US dollars
    # per million tokens, e.g. {"gpt-4o-mini": [0.15, 0.6]}. A model not listed shows no cost.
    model_prices: dict[str, tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]]] = {}

    # Tokens the model may spend (0: no limit), as it reports them, per student and UTC day and for
    # the whole institution per UTC month; once spent, students get a polite message instead.
    token_budget_student_daily: int = Field(default=100_000, ge=0)
    token_budget_institution_monthly: int = Field(default=0, ge=0)

    # Retention, in days (0: kept for ever): a conversation (its messages and attachments) this long
    # after its last message, a finished job this long after it finished, a finished campaign's
    # ledger this long after it finished. Purged hourly in small batches (bedel/retention).
    retention_days: int = Field(default=0, ge=0, le=36_500)
    job_retention_days: int = Field(default=30, ge=0, le=36_500)
    campaign_retention_days: int = Field(default=0, ge=0, le=36_500)
    # Sent once to each WhatsApp contact with their first answer; unset: the standard notice naming
    # BEDEL_INSTITUTION_NAME and BEDEL_CONTACT; "off": none.
    privacy_notice: str | None = None

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        try:
            driver = make_url(value).drivername
        except ArgumentError:
            raise ValueError("not a database URL") from None
        if driver not in ASYNC_DRIVERS:
            raise ValueError(f"use one of {', '.join(ASYNC_DRIVERS)} (for example sqlite+aiosqlite:///./data/bedel.db)")
        return value

    @field_validator("llm_base_url", "transcription_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if not value:
            return None  # an empty line in an env file means "not set"
        try:
            parts = urlsplit(value)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:  # a port that is not a number
            valid = False
        if not valid:
            raise ValueError("not an http(s) URL; use the server's API root, such as http://localhost:11434/v1")
        return value

    @field_validator("job_retention_days")
    @classmethod
    def _dedupe_window(cls, value: int) -> int:
        if 0 < value < VENDOR_REDELIVERY_DAYS:
            raise ValueError(
                f"finished jobs are the ledger that keeps a webhook redelivered by Meta (for up to "
                f"{VENDOR_REDELIVERY_DAYS} days) from being answered twice; use {VENDOR_REDELIVERY_DAYS} or more, "
                "or 0 to keep them"
            )
        return value

    @field_validator("privacy_notice")
    @classmethod
    def _notice_text(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError('an empty notice; write the notice, leave it unset for the standard one, or "off"')
        return value

    @field_validator("api_keys", "staff_api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @property
    def server_processes(self) -> int:
        if self.workers is not None:
            return self.workers
        if self.env is Environment.production:
            return len(os.sched_getaffinity(0))
        return 1

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys or self.staff_api_keys)

    @property
    def whatsapp_enabled(self) -> bool:
        return bool(
            self.whatsapp_verify_token
            and self.whatsapp_app_secret
            and self.whatsapp_access_token
            and self.whatsapp_phone_number_id
        )

    @property
    def sms_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_sms_from)

    @property
    def email_enabled(self) -> bool:
        return bool(self.smtp_host and self.smtp_from)

    @property
    def twilio_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_from)


def load_settings() -> Settings:
    """Build settings, turning any invalid value into one `ConfigError` line."""
    try:
        settings = Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        name = _env_name(error["loc"])
        # The value itself is not echoed: it may be a key or a URL with a password.
        raise ConfigError(f"{name}: {error['msg'].removeprefix('Value error, ')}; fix {name}") from None
    if settings.llm_provider is LLMProvider.openai_compatible and not (settings.llm_base_url or settings.llm_api_key):
        raise ConfigError(
            "BEDEL_LLM_API_KEY: OpenAI needs a key; set BEDEL_LLM_API_KEY (or OPENAI_API_KEY), "
            "or BEDEL_LLM_BASE_URL for a local server"
        )
    if settings.transcription_model and not (
        settings.transcription_base_url
        or settings.llm_base_url
        or settings.transcription_api_key
        or settings.llm_api_key
    ):
        raise ConfigError(
            "BEDEL_TRANSCRIPTION_API_KEY: OpenAI needs a key to transcribe voice notes; set "
            "BEDEL_TRANSCRIPTION_API_KEY (or BEDEL_LLM_API_KEY), or BEDEL_TRANSCRIPTION_BASE_URL for a local server"
        )
    if settings.twilio_enabled and not settings.public_url:
        raise ConfigError(
            "BEDEL_PUBLIC_URL: Twilio signs the public URL it calls; set BEDEL_PUBLIC_URL "
            "(for example https://bedel.example.edu)"
        )
    _check_reengagement(settings)
    if settings.identity_verification_field == "email_code" and not settings.email_enabled:
        raise ConfigError(
            "BEDEL_SMTP_HOST: BEDEL_IDENTITY_VERIFICATION_FIELD=email_code emails a one-time code; "
            "set BEDEL_SMTP_HOST and BEDEL_SMTP_FROM"
        )
    return settings


def check_server_processes(settings: Settings) -> None:
    """Limits counted in memory are each process's own: N workers would let N times the limit through."""
    processes = settings.server_processes
    if processes > 1 and settings.rate_limit_storage_url.startswith("memory://"):
        raise ConfigError(
            f"BEDEL_RATE_LIMIT_STORAGE_URL: memory:// counts rate limits in each process and {processes} "
            "worker processes would serve; set redis://host:6379 so they share the counts, or BEDEL_WORKERS=1"
        )


def _check_reengagement(settings: Settings) -> None:
    """The fallback chosen must have what it sends with."""
    if settings.reengage_fallback is ReengageFallback.template:
        if settings.whatsapp_enabled and not settings.whatsapp_reengage_template:
            raise ConfigError(
                "BEDEL_WHATSAPP_REENGAGE_TEMPLATE: BEDEL_REENGAGE_FALLBACK=template needs the approved template's name"
            )
        if settings.twilio_enabled and not settings.twilio_reengage_content_sid:
            raise ConfigError(
                "BEDEL_TWILIO_REENGAGE_CONTENT_SID: BEDEL_REENGAGE_FALLBACK=template needs the template's "
                "Content SID (HX...)"
            )
    if settings.reengage_fallback is ReengageFallback.sms and not settings.sms_enabled:
        raise ConfigError(
            "BEDEL_TWILIO_SMS_FROM: BEDEL_REENGAGE_FALLBACK=sms sends through Twilio; set BEDEL_TWILIO_ACCOUNT_SID, "
            "BEDEL_TWILIO_AUTH_TOKEN and BEDEL_TWILIO_SMS_FROM (an SMS-capable number such as +15017122661)"
        )
    if settings.reengage_fallback is ReengageFallback.email and not settings.email_enabled:
        raise ConfigError(
            "BEDEL_SMTP_HOST: BEDEL_REENGAGE_FALLBACK=email sends through SMTP; set BEDEL_SMTP_HOST and BEDEL_SMTP_FROM"
        )


def _env_name(loc: tuple[int | str, ...]) -> str:
    field = str(loc[0]) if loc else "settings"
    if field.isupper():
        return field
    return f"BEDEL_{field.upper()}"
