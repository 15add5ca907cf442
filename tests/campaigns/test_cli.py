"""`bedel campaigns ...` in process through typer, on SQLite and PostgreSQL; no message is sent."""

import asyncio
import re
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from bedel import commands
from bedel.campaigns import cli as campaigns_cli
from bedel.campaigns import service
from bedel.campaigns.models import RecipientStatus
from bedel.campaigns.repository import CampaignRepository, Settlement
from bedel.cli import app
from bedel.db import create_engine, create_sessionmaker, session_scope

STUDENTS = """matricula,nombre,telefono,correo,carrera,meses_vencidos,adeudo
A001,Ana Ruiz,+52 55 1111 2222,ana@alumnos.example.edu,Derecho,2,4500.00
A002,Beto Díaz,+52 55 3333 4444,,Derecho,1,1200.50
A003,Carla Gómez,+52 55 5555 6666,carla@alumnos.example.edu,Ingeniería,0,0
"""
REMINDER = [
    "--name",
    "Recordatorio de pago",
    "--channel",
    "email",
    "--subject",
    "Pago pendiente, {{ name }}",
    "--text",
    "Debes ${{ adeudo }} de {{ carrera }}.",
    "--filter",
    "meses_vencidos >= 1",
]
# An email to a list of addresses.
NOTICE = ["--name", "Aviso", "--channel", "email", "--subject", "Aviso", "--text", "Hola"]


def campaigns(*args: str, env: dict[str, str]) -> Result:
    return CliRunner().invoke(app, ["campaigns", *args], env=env)


def created_id(result: Result) -> str:
    assert result.exit_code == 0, result.output
    found = re.search(r"^campaign ([0-9a-f-]{36}):", result.stdout, flags=re.MULTILINE)
    assert found is not None, result.stdout
    return found.group(1)


def summary(result: Result) -> list[str]:
    return result.stdout.strip().splitlines()


@pytest.fixture
def env(clean_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Students imported; email configured so campaigns on it are allowed (nothing reaches the SMTP host)."""
    monkeypatch.chdir(tmp_path)
    values = {
        "BEDEL_DATABASE_URL": clean_database,
        "BEDEL_KNOWLEDGE_INDEX_DIR": str(tmp_path / "index"),
        "BEDEL_SMTP_HOST": "127.0.0.1",
        "BEDEL_SMTP_FROM": "avisos@example.edu",
    }
    (tmp_path / "alumnos.csv").write_text(STUDENTS, encoding="utf-8")
    imported = CliRunner().invoke(app, ["students", "import", "alumnos.csv"], env=values)
    assert imported.exit_code == 0, imported.output
    return values


async def cancel_elsewhere(database_url: str, campaign_id: str) -> None:
    """Another member of staff cancels, through the same service as the API."""
    engine = create_engine(database_url)
    try:
        async for session in session_scope(create_sessionmaker(engine)):
            await service.change_status(session, uuid.UUID(campaign_id), "cancel")
    finally:
        await engine.dispose()


async def settle_all(database_url: str, campaign_id: str, errors: dict[str, str]) -> None:
    """What a worker does: lease the recipients, then record each as failed with its error, or as sent."""
    engine = create_engine(database_url)
    token = uuid.uuid4()
    try:
        async for session in session_scope(create_sessionmaker(engine)):
            repository = CampaignRepository.from_session(session)
            claimed = await repository.claim(uuid.UUID(campaign_id), 100, timedelta(seconds=60), token)
            await repository.settle(
                token,
                [
                    Settlement(r.id, RecipientStatus.failed, error=errors[r.address])
                    if r.address in errors
                    else Settlement(r.id, RecipientStatus.sent, vendor_message_id=f"<{r.id}@example.edu>")
                    for r in claimed
                ],
            )
    finally:
        await engine.dispose()


class TestCreate:
    def test_dry_run_counts_skips_and_renders_samples_without_storing(self, env: dict[str, str]) -> None:
        result = campaigns("create", *REMINDER, "--dry-run", env=env)

        assert result.exit_code == 0, result.output
        assert summary(result) == [
            "dry run, nothing stored: 1 to send, 1 skipped",
            "  skipped no_email: 1",
            "to ana@alumnos.example.edu:",
            "  subject: Pago pendiente, Ana Ruiz",
            "  Debes $4500.00 de Derecho.",
        ]
        assert campaigns("list", env=env).stdout == ""

    def test_create_stores_a_draft_and_prints_its_id_and_counts(self, env: dict[str, str]) -> None:
        result = campaigns("create", *REMINDER, env=env)

        campaign_id = created_id(result)
        assert summary(result)[1:] == [
            "  email, draft",
            "  recipients: 2 total, 1 pending, 0 sending, 0 sent, 0 failed, 1 skipped (no_email 1)",
            f"created as a draft; send it with: bedel campaigns start {campaign_id}",
        ]
        listed = summary(campaigns("list", env=env))
        assert listed == [f"{campaign_id}  draft      email              1/2 done  Recordatorio de pago"]

    def test_a_recipients_file_takes_each_line_and_skips_a_header(self, tmp_path: Path, env: dict[str, str]) -> None:
        (tmp_path / "lista.csv").write_text(
            "correo,nombre\nana@alumnos.example.edu,Ana\nexterna@example.org,Invitada\n", encoding="utf-8"
        )

        result = campaigns("create", *NOTICE, "--recipients", "lista.csv", "--dry-run", env=env)

        assert result.exit_code == 0, result.output
        assert summary(result)[0] == "dry run, nothing stored: 2 to send, 0 skipped"
        assert [line for line in summary(result) if line.startswith("to ")] == [
            "to ana@alumnos.example.edu:",
            "to externa@example.org:",
        ]

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"--filter": "meses_vencidos >="}, "error: the filter is not valid: invalid syntax"),
            ({"--filter": "adeudo_total > 0"}, "error: no student record has the field 'adeudo_total'"),
            ({"--subject": None}, "error: an email campaign takes `message.subject` and `message.text`"),
            ({"--channel": "sms", "--subject": None}, "error: the sms channel is not configured"),
            ({"--channel": "fax"}, "error: channel: Input should be 'whatsapp_template', 'sms' or 'email'"),
            ({"--name": None}, "error: name: Field required"),
        ],
    )
    def test_bad_input_is_refused_with_the_reason_and_stores_nothing(
        self, env: dict[str, str], change: dict[str, str | None], message: str
    ) -> None:
        options = dict(zip(REMINDER[::2], REMINDER[1::2], strict=True)) | change
        args = [part for option, value in options.items() if value is not None for part in (option, value)]

        result = campaigns("create", *args, env=env)

        assert result.exit_code == commands.EXIT_INPUT
        assert result.stderr.startswith(message), result.stderr
        assert campaigns("list", env=env).stdout == ""

    def test_a_recipients_file_that_cannot_be_read_is_named(self, env: dict[str, str]) -> None:
        result = campaigns("create", *NOTICE, "--recipients", "no-existe.csv", env=env)

        assert result.exit_code == commands.EXIT_INPUT
        assert result.stderr == "error: cannot read no-existe.csv: No such file or directory\n"


class TestStatus:
    def test_start_pause_resume_and_cancel_move_the_campaign(self, env: dict[str, str]) -> None:
        campaign_id = created_id(campaigns("create", *REMINDER, env=env))

        statuses = []
        for action in ("start", "pause", "resume", "cancel"):
            result = campaigns(action, campaign_id, env=env)
            assert result.exit_code == 0, result.output
            statuses.append(summary(result)[1])

        assert statuses == ["  email, running", "  email, paused", "  email, running", "  email, cancelled"]
        assert summary(campaigns("show", campaign_id, env=env))[1:] == [
            "  email, cancelled",
            "  recipients: 2 total, 0 pending, 0 sending, 0 sent, 0 failed, 2 skipped (cancelled 1, no_email 1)",
        ]

    def test_an_action_the_status_does_not_allow_is_refused(self, env: dict[str, str]) -> None:
        campaign_id = created_id(campaigns("create", *REMINDER, env=env))

        result = campaigns("resume", campaign_id, env=env)

        assert result.exit_code == commands.EXIT_INPUT
        assert result.stderr == "error: a draft campaign cannot resume\n"
        assert summary(campaigns("show", campaign_id, env=env))[1] == "  email, draft"

    @pytest.mark.parametrize("command", ["show", "start", "failures", "watch"])
    def test_an_unknown_campaign_is_named(self, env: dict[str, str], command: str) -> None:
        unknown = str(uuid.uuid4())

        result = campaigns(command, unknown, env=env)

        assert result.exit_code == commands.EXIT_INPUT
        assert result.stderr == f"error: no campaign {unknown}\n"

    def test_watch_follows_the_campaign_until_it_ends(self, clean_database: str, env: dict[str, str]) -> None:
        campaign_id = created_id(campaigns("create", *REMINDER, env=env))
        campaigns("start", campaign_id, env=env)
        cancelling = threading.Timer(1.5, lambda: asyncio.run(cancel_elsewhere(clean_database, campaign_id)))

        cancelling.start()
        result = campaigns("watch", campaign_id, env=env)
        cancelling.join()

        assert result.exit_code == 0, result.output
        # Off a terminal the bar shows its label whenever it changes.
        assert summary(result) == [
            "Recordatorio de pago (running)",
            "Recordatorio de pago (cancelled)",
            "cancelled, recipients: 2 total, 0 pending, 0 sending, 0 sent, 0 failed, "
            "2 skipped (cancelled 1, no_email 1)",
        ]


class TestFailures:
    def test_failures_lists_every_failed_recipient_with_its_error_across_pages(
        self, tmp_path: Path, clean_database: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(campaigns_cli, "FAILURES_PAGE", 2)
        addresses = ["ana@alumnos.example.edu", "uno@example.org", "dos@example.org", "tres@example.org"]
        (tmp_path / "lista.txt").write_text("\n".join(addresses), encoding="utf-8")
        campaign_id = created_id(campaigns("create", *NOTICE, "--recipients", "lista.txt", env=env))
        campaigns("start", campaign_id, env=env)
        errors = {
            "uno@example.org": "SMTP 550: mailbox unavailable",
            "dos@example.org": "SMTP 550: mailbox unavailable",
            "tres@example.org": "SMTP 553: bad address",
        }
        asyncio.run(settle_all(clean_database, campaign_id, errors))

        result = campaigns("failures", campaign_id, env=env)

        assert result.exit_code == 0, result.output
        assert summary(result) == [
            "uno@example.org  attempts=1  SMTP 550: mailbox unavailable",
            "dos@example.org  attempts=1  SMTP 550: mailbox unavailable",
            "tres@example.org  attempts=1  SMTP 553: bad address",
            "3 failed",
        ]
