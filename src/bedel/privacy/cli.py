"""`bedel students export PHONE`, `bedel students erase PHONE` and `bedel students erasures`:
a student's rights over their data (ARCO), from the server's command line."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, NoReturn, TypeVar

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.auth import Caller
from bedel.config import ConfigError, load_settings
from bedel.db import create_engine, create_sessionmaker, session_scope
from bedel.errors import BedelError
from bedel.privacy import service
from bedel.privacy.schemas import ErasureReceipt

EXIT_INPUT = 1
EXIT_CONFIG = 2
EXIT_DATABASE = 3

T = TypeVar("T")
Phone = Annotated[str, typer.Argument(help="The student's phone, in any common shape")]


def export(phone: Phone) -> None:
    """Print everything held about the student as JSON (ARCO access)."""
    exported = _run(lambda session: service.export_student(session, phone, Caller.command_line()))
    typer.echo(exported.model_dump_json(indent=2))


def erase(
    phone: Phone,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Erase everything held about the student (ARCO cancellation) and print the receipt."""
    if not yes:
        typer.confirm(f"Erase everything held about {phone}? This cannot be undone", abort=True)
    erasure = _run(lambda session: service.erase_student(session, phone, Caller.command_line()), scrub=True)
    receipt = ErasureReceipt.model_validate(erasure)
    removed = ", ".join(f"{count} {name}" for name, count in receipt.removed.items())
    typer.echo(f"erased: receipt {receipt.id} ({removed})")


def erasures(limit: Annotated[int, typer.Option(min=1, max=1000)] = 50) -> None:
    """List the erasures done, latest first: receipt, when, who asked."""
    done = _run(lambda session: service.list_erasures(session, limit, 0))
    for erasure in done:
        receipt = ErasureReceipt.model_validate(erasure)
        typer.echo(f"{receipt.id}  {receipt.erased_at.isoformat(timespec='seconds')}  {receipt.requested_by}")


# Registered under `bedel students` by the `bedel` command.
COMMANDS: dict[str, Callable[..., None]] = {"export": export, "erase": erase, "erasures": erasures}


def _run(work: Callable[[AsyncSession], Awaitable[T]], *, scrub: bool = False) -> T:
    try:
        settings = load_settings()
        return asyncio.run(_in_transaction(settings.database_url, work, scrub))
    except ConfigError as exc:
        _fail(EXIT_CONFIG, str(exc))
    except BedelError as exc:
        _fail(EXIT_INPUT, exc.message)
    except SQLAlchemyError as exc:
        _fail(
            EXIT_DATABASE, f"database error ({type(exc).__name__}); check BEDEL_DATABASE_URL and run `bedel db upgrade`"
        )


async def _in_transaction(url: str, work: Callable[[AsyncSession], Awaitable[T]], scrub: bool) -> T:
    engine = create_engine(url)
    results: list[T] = []
    try:
        # Run the loop to its end: session_scope commits after its single yield.
        async for session in session_scope(create_sessionmaker(engine)):
            results.append(await work(session))
        if scrub:
            await service.scrub_after_erasure(engine)
    finally:
        await engine.dispose()
    return results[0]


def _fail(code: int, message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
