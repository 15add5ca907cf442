"""`bedel students export PHONE`, `bedel students erase PHONE` and `bedel students erasures`:
a student's rights over their data (ARCO), from the server's command line."""

from collections.abc import Callable
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from bedel.auth import Caller
from bedel.commands import in_transaction, run, run_in_transaction
from bedel.db import create_sessionmaker
from bedel.privacy import service
from bedel.privacy.models import ErasureRequest
from bedel.privacy.schemas import ErasureReceipt

Phone = Annotated[str, typer.Argument(help="The student's phone, in any common shape")]


def export(phone: Phone) -> None:
    """Print everything held about the student as JSON (ARCO access)."""
    exported = run_in_transaction(lambda session: service.export_student(session, phone, Caller.command_line()))
    typer.echo(exported.model_dump_json(indent=2))


def erase(
    phone: Phone,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Erase everything held about the student (ARCO cancellation) and print the receipt."""
    if not yes:
        typer.confirm(f"Erase everything held about {phone}? This cannot be undone", abort=True)
    erasure = run(lambda _settings, engine: _erase(engine, phone))
    receipt = ErasureReceipt.model_validate(erasure)
    removed = ", ".join(f"{count} {name}" for name, count in receipt.removed.items())
    typer.echo(f"erased: receipt {receipt.id} ({removed})")


def erasures(limit: Annotated[int, typer.Option(min=1, max=1000)] = 50) -> None:
    """List the erasures done, latest first: receipt, when, who asked."""
    done = run_in_transaction(lambda session: service.list_erasures(session, limit, 0))
    for erasure in done:
        receipt = ErasureReceipt.model_validate(erasure)
        typer.echo(f"{receipt.id}  {receipt.erased_at.isoformat(timespec='seconds')}  {receipt.requested_by}")


# Registered under `bedel students` by the `bedel` command.
COMMANDS: dict[str, Callable[..., None]] = {"export": export, "erase": erase, "erasures": erasures}


async def _erase(engine: AsyncEngine, phone: str) -> ErasureRequest:
    erasure = await in_transaction(
        create_sessionmaker(engine), lambda session: service.erase_student(session, phone, Caller.command_line())
    )
    await service.scrub_after_erasure(engine)
    return erasure
