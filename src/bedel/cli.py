"""The `bedel` command: serve, worker, db upgrade, students import, kb add, campaigns, chat, eval.

Start-up errors print one line and exit with a distinct code.
"""

import asyncio
import contextlib
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, NoReturn

import httpx
import structlog
import typer
import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from bedel import migrate
from bedel.app import build_state, create_app, create_worker_app, mark_stopping
from bedel.campaigns.cli import app as campaigns_app
from bedel.commands import EXIT_CONFIG, EXIT_DATABASE, EXIT_INPUT, EXIT_MIGRATIONS
from bedel.config import ConfigError, Environment, Settings, check_server_processes, load_settings
from bedel.db import create_engine, create_sessionmaker
from bedel.errors import BedelError
from bedel.keys.cli import app as keys_app
from bedel.keys.service import keys_made
from bedel.knowledge.cli import app as knowledge_app
from bedel.knowledge.evaluation import EvalCase, EvalReport, format_report, load_cases, run_eval
from bedel.ops.lifecycle import GRACE_S, DrainingServer
from bedel.ops.logging import configure_logging
from bedel.ops.metrics import MULTIPROCESS_DIR, start_metrics_server
from bedel.ops.workers import run_workers, stop_with_parent
from bedel.phones import InvalidPhone, normalize_phone
from bedel.privacy.cli import COMMANDS as PRIVACY_COMMANDS
from bedel.students.cli import app as students_app
from bedel.users.cli import app as users_app

EXIT_PORT = 5
EXIT_RATE_LIMIT_STORAGE = 6
WAIT_POLL_S = 2.0
BACKLOG = 2048  # uvicorn's default, for connections waiting to be accepted

app = typer.Typer(help="Bedel: answers students' questions.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(students_app, name="students")
for _name, _command in PRIVACY_COMMANDS.items():
    students_app.command(_name)(_command)
app.add_typer(knowledge_app, name="kb")
app.add_typer(campaigns_app, name="campaigns")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
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


async def _check_startup(settings: Settings) -> bool:
    """Fail before the server starts, in one line, rather than inside its lifespan; returns
    whether callers need a key (given in settings, or made with `bedel keys create`)."""
    keyed = await _check_database(settings)
    if settings.env is Environment.production and not keyed:
        fail(
            EXIT_CONFIG,
            "config_error",
            "BEDEL_API_KEYS: production refuses to start without API keys; create one with "
            "`bedel keys create`, or set BEDEL_API_KEYS and/or BEDEL_STAFF_API_KEYS",
        )
    try:
        state = build_state(settings)
    except ConfigError as exc:
        fail(EXIT_CONFIG, "config_error", str(exc))
    try:
        if not await state.limiter.storage_reachable():
            fail(
                EXIT_RATE_LIMIT_STORAGE,
                "rate_limit_storage_unreachable",
                "BEDEL_RATE_LIMIT_STORAGE_URL: the rate-limit storage does not answer; "
                "check the URL and that Redis runs, or use memory:// on a single replica",
            )
    finally:
        await state.aclose()
    return keyed


async def _check_database(settings: Settings) -> bool:
    """Whether callers need a key: the schema must be current to tell."""
    engine = create_engine(settings.database_url)
    try:
        revision = await migrate.current_revision(engine)
        if migrate.is_pending(revision):
            _migrations_pending(revision)
        async with create_sessionmaker(engine)() as session:
            return settings.auth_enabled or await keys_made(session)
    except (SQLAlchemyError, OSError) as exc:
        _database_unreachable(exc)
    finally:
        await engine.dispose()


def _database_unreachable(exc: BaseException) -> NoReturn:
    fail(
        EXIT_DATABASE,
        "database_unreachable",
        f"BEDEL_DATABASE_URL: cannot connect ({_root_cause(exc)}); check the host, port, user, "
        "password and database name in the URL, and that the server runs",
    )


def _migrations_pending(revision: str | None) -> NoReturn:
    fail(
        EXIT_MIGRATIONS,
        "migrations_pending",
        f"database schema is at {revision}, this version needs {migrate.head_revision()}; run `bedel db upgrade`",
    )


def _root_cause(exc: BaseException) -> str:
    """The innermost error's class, e.g. InvalidCatalogNameError: it names the cause without echoing the URL."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return type(exc).__name__


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Interface to bind (default: 0.0.0.0 with keys, else 127.0.0.1)"),
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default BEDEL_PORT, 3000)")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Server processes on the port (default BEDEL_WORKERS: CPUs in production)"),
    ] = None,
) -> None:
    """Run the HTTP API."""
    settings = settings_or_exit()
    if workers is not None:
        settings = settings.model_copy(update={"workers": workers})
    try:
        check_server_processes(settings)
    except ConfigError as exc:
        fail(EXIT_CONFIG, "config_error", str(exc))
    keyed = asyncio.run(_check_startup(settings))
    processes = settings.server_processes
    if processes == 1:
        api_socket = _listen_with_metrics(settings, keyed, host, port)
        _serve_process(api_socket, settings)
        return
    # The workers read their settings as this process did, so they learn the count the same way.
    os.environ["BEDEL_WORKERS"] = str(processes)
    with _shared_metrics_folder():
        api_socket = _listen_with_metrics(settings, keyed, host, port)
        code = run_workers(processes, _serve_process, api_socket)
    raise typer.Exit(code)


def _serve_process(api_socket: socket.socket, settings: Settings | None = None) -> None:
    """One server process on `api_socket`: the whole of `bedel serve`, or one of its workers."""
    if settings is None:  # a worker process, started afresh
        stop_with_parent()
        settings = settings_or_exit()
    bedel = create_app(settings)
    config = uvicorn.Config(bedel, log_config=None, access_log=False, timeout_graceful_shutdown=GRACE_S)
    server = DrainingServer(config, drain_s=settings.shutdown_drain_s, on_stop=lambda: mark_stopping(bedel))
    server.run(sockets=[api_socket])


@contextlib.contextmanager
def _shared_metrics_folder() -> Iterator[None]:
    """Workers keep their metrics in files the metrics port sums (PROMETHEUS_MULTIPROC_DIR).

    An operator's folder is used as given (empty it between runs); otherwise a fresh one
    lives as long as this process.
    """
    if MULTIPROCESS_DIR in os.environ:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="bedel-metrics-") as folder:
        os.environ[MULTIPROCESS_DIR] = folder
        try:
            yield
        finally:
            del os.environ[MULTIPROCESS_DIR]


def _listen_with_metrics(
    settings: Settings, keyed: bool, host: str | None = None, port: int | None = None
) -> socket.socket:
    """The HTTP port's socket, once /metrics is served on BEDEL_METRICS_PORT of the same interface."""
    # Without keys anyone who reaches the port is staff: stay on loopback.
    bind = (host or settings.host or "0.0.0.0") if keyed else "127.0.0.1"  # noqa: S104
    http_socket = _listen(bind, port or settings.port, "BEDEL_PORT")
    try:
        start_metrics_server(bind, settings.metrics_port)
    except OSError as exc:
        fail(EXIT_PORT, "port_unavailable", _port_message("BEDEL_METRICS_PORT", settings.metrics_port, exc))
    if not keyed:
        log.warning("no_api_keys", message="no API keys configured: listening on 127.0.0.1 only")
    return http_socket


def _listen(host: str, port: int, setting: str) -> socket.socket:
    """Bind before anything starts, so a taken port is one clear line rather than uvicorn's."""
    try:
        return socket.create_server((host, port), backlog=BACKLOG)
    except OSError as exc:
        fail(EXIT_PORT, "port_unavailable", _port_message(setting, port, exc))


def _port_message(setting: str, port: int, exc: OSError) -> str:
    return f"{setting}: cannot listen on port {port} ({exc.strerror}); stop what uses it or choose another port"


@app.command()
def worker() -> None:
    """Run background jobs (WhatsApp and Twilio replies) until SIGTERM or Ctrl-C, beside API replicas.

    Like `bedel serve` it answers /healthz on BEDEL_PORT and serves /metrics on BEDEL_METRICS_PORT.
    """
    settings = settings_or_exit()
    keyed = asyncio.run(_check_startup(settings))
    health_socket = _listen_with_metrics(settings, keyed)
    config = uvicorn.Config(
        create_worker_app(settings), log_config=None, access_log=False, timeout_graceful_shutdown=GRACE_S
    )
    uvicorn.Server(config).run(sockets=[health_socket])


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


@db_app.command("wait")
def db_wait(
    timeout: Annotated[float, typer.Option(help="Seconds to wait before giving up")] = 300,
) -> None:
    """Wait until the database answers and holds every migration of this version (an init container's job)."""
    settings = settings_or_exit()
    asyncio.run(_wait_for_schema(settings, timeout))


async def _wait_for_schema(settings: Settings, wait_s: float) -> None:
    engine = create_engine(settings.database_url)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                revision = await migrate.current_revision(engine)
            except (SQLAlchemyError, OSError) as exc:
                if time.monotonic() > deadline:
                    _database_unreachable(exc)
            else:
                if not migrate.is_pending(revision):
                    log.info("database_ready", revision=revision)
                    return
                if time.monotonic() > deadline:
                    _migrations_pending(revision)
            await asyncio.sleep(WAIT_POLL_S)
    finally:
        await engine.dispose()


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
        await state.aclose()


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
        fail(EXIT_INPUT, "eval_file_unreadable", f"cannot read {file}: {exc.strerror}")
    except BedelError as exc:
        fail(EXIT_INPUT, "eval_file_invalid", exc.message)
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
