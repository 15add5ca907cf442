"""The `bedel` command: serve, db upgrade, students import, kb add, chat, eval.

Start-up errors print one line and exit with a distinct code.
"""

import asyncio
from pathlib import Path
from typing import Annotated, NoReturn

import httpx
import structlog
import typer
import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from bedel import migrate
from bedel.app import build_state, create_app
from bedel.config import ConfigError, Settings, load_settings
from bedel.db import create_engine
from bedel.errors import BedelError
from bedel.knowledge.cli import app as knowledge_app
from bedel.knowledge.evaluation import EvalCase, EvalReport, format_report, load_cases, run_eval
from bedel.ops.logging import configure_logging
from bedel.phones import InvalidPhone, normalize_phone
from bedel.students.cli import app as students_app

EXIT_FILE = 1
EXIT_CONFIG = 2
EXIT_DATABASE = 3
EXIT_MIGRATIONS = 4

app = typer.Typer(help="Bedel: answers students' questions.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(students_app, name="students")
app.add_typer(knowledge_app, name="kb")
log = structlog.get_logger()


def fail(code: int, event: str, message: str) -> NoReturn:
    log.error(event, message=message)
    raise typer.Exit(code)


def settings_or_exit() -> Settings:
    configure_logging()
    try:
        return load_settings()
    except ConfigError as exc:
        fail(EXIT_CONFIG, "config_error", str(exc))


async def _check_startup(settings: Settings) -> None:
    """Fail before the server starts, in one line, rather than inside its lifespan."""
    await _check_database(settings)
    try:
        state = build_state(settings)
    except ConfigError as exc:
        fail(EXIT_CONFIG, "config_error", str(exc))
    await state.model.aclose()
    await state.engine.dispose()


async def _check_database(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        revision = await migrate.current_revision(engine)
    except (SQLAlchemyError, OSError) as exc:
        fail(
            EXIT_DATABASE,
            "database_unreachable",
            f"BEDEL_DATABASE_URL: cannot connect ({type(exc).__name__}); check the URL and that the server runs",
        )
    finally:
        await engine.dispose()
    if revision != migrate.head_revision():
        fail(
            EXIT_MIGRATIONS,
            "migrations_pending",
            f"database schema is at {revision}, this version needs {migrate.head_revision()}; run `bedel db upgrade`",
        )


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Interface to bind (default: 0.0.0.0 with keys, else 127.0.0.1)"),
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default BEDEL_PORT, 3000)")] = None,
) -> None:
    """Run the HTTP API."""
    settings = settings_or_exit()
    asyncio.run(_check_startup(settings))
    # Without keys anyone who reaches the port is staff: stay on loopback.
    bind = (host or settings.host or "0.0.0.0") if settings.auth_enabled else "127.0.0.1"  # noqa: S104
    if not settings.auth_enabled:
        log.warning("no_api_keys", message="no API keys configured: listening on 127.0.0.1 only")
    uvicorn.run(
        create_app(settings),
        host=bind,
        port=port or settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
    )


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply the migrations up to REVISION."""
    settings = settings_or_exit()
    try:
        migrate.upgrade(settings.database_url, revision)
    except (SQLAlchemyError, OSError) as exc:
        fail(
            EXIT_DATABASE,
            "database_unreachable",
            f"BEDEL_DATABASE_URL: {type(exc).__name__}: {exc}",
        )
    log.info("database_upgraded", revision=revision)


@app.command()
def chat(
    phone: Annotated[str, typer.Option(help="The student's phone, in any common shape")],
) -> None:
    """Talk to the assistant in the terminal, as the student with PHONE. Ctrl-D ends."""
    settings = settings_or_exit()
    try:
        canonical = normalize_phone(phone)
    except InvalidPhone as exc:
        raise typer.BadParameter(str(exc), param_hint="--phone") from None
    asyncio.run(_check_startup(settings))
    asyncio.run(_converse(settings, canonical))


async def _converse(settings: Settings, phone: str) -> None:
    state = build_state(settings)
    await state.knowledge.start()
    try:
        while True:
            try:
                question = await asyncio.to_thread(input, "tú> ")
            except EOFError:
                break
            if not question.strip():
                continue
            try:
                answer = await state.chat.ask(phone, question.strip()[:4000])
            except BedelError as exc:
                typer.echo(f"[{exc.code}] {exc.message}", err=True)
                continue
            typer.echo(f"bedel> {answer.answer}")
    finally:
        await state.knowledge.aclose()
        await state.model.aclose()
        await state.engine.dispose()


@app.command("eval")
def evaluate(
    file: Annotated[Path, typer.Argument(help="JSONL cases: question, expected_document, expected_facts, ...")],
    url: Annotated[str | None, typer.Option(help="A running Bedel (default: this configuration, in process)")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="BEDEL_EVAL_API_KEY", help="Staff key for --url")] = None,
    output: Annotated[Path | None, typer.Option(help="Also write every case's result here, as JSON")] = None,
) -> None:
    """Run evaluation cases through /chat and report hit rate, fact rate and forbidden facts."""
    settings = settings_or_exit()
    try:
        cases = load_cases(file)
    except OSError as exc:
        fail(EXIT_FILE, "eval_file_unreadable", f"cannot read {file}: {exc.strerror}")
    except BedelError as exc:
        fail(EXIT_FILE, "eval_file_invalid", exc.message)
    if url is None:
        asyncio.run(_check_startup(settings))
    report = asyncio.run(_evaluate(settings, cases, url, api_key))
    typer.echo(format_report(report))
    if output is not None:
        output.write_text(report.model_dump_json(indent=2), encoding="utf-8")


async def _evaluate(settings: Settings, cases: list[EvalCase], url: str | None, api_key: str | None) -> EvalReport:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    if url is not None:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
            return await run_eval(client, cases)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bedel.local", timeout=120) as client:
            return await run_eval(client, cases)


if __name__ == "__main__":
    app()
