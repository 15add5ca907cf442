"""`bedel keys create|list|revoke`: the API keys kept in the database.

A key is printed once, when it is created; afterwards only its name is known. Each creation
and revocation is recorded in the audit log, as done by the system user who ran the command.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.audit import service as audit
from bedel.audit.models import Action
from bedel.auth import Caller
from bedel.commands import EXIT_EXISTS, EXIT_NOT_FOUND, run_in_transaction
from bedel.db import utcnow
from bedel.keys import service
from bedel.keys.models import ApiKey, KeyRole
from bedel.keys.service import KeyNameTaken, KeyNotFound

T = TypeVar("T")
Name = Annotated[str, typer.Option(help="What the key is for, e.g. 'sitio web'; it names the key in the audit log")]

app = typer.Typer(help="API keys (Authorization: Bearer <key>)", no_args_is_help=True)


@app.command()
def create(
    role: Annotated[KeyRole, typer.Option(help="client: only /chat; staff: every route of the API")],
    name: Name,
) -> None:
    """Create a key and print it: this is the only time it is shown."""

    async def work(session: AsyncSession) -> str:
        key, secret = await service.create_key(session, name, role)
        await audit.record(session, Caller.command_line(), Action.key_create, target=key.name, detail={"role": role})
        return secret

    secret = _run(work)
    typer.echo(f"created {role} key {name.strip()!r}; it will not be shown again:\n{secret}")


@app.command("list")
def list_keys() -> None:
    """Every key: name, role, status and last use (to the minute)."""
    for key in _run(service.list_keys):
        last = key.last_used_at.strftime("%Y-%m-%d %H:%M") if key.last_used_at else "never"
        status = "revoked" if key.revoked_at else "active"
        typer.echo(f"{key.name}  {key.role:<6}  {status:<7}  last used {last}")


@app.command()
def revoke(name: Annotated[str, typer.Argument(metavar="NAME", help="The key's name")]) -> None:
    """Revoke a key: every replica refuses it from the next request on."""

    async def work(session: AsyncSession) -> ApiKey:
        key = await service.revoke_key(session, name, utcnow())
        await audit.record(session, Caller.command_line(), Action.key_revoke, target=key.name)
        return key

    typer.echo(f"revoked {_run(work).name!r}")


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    return run_in_transaction(work, {KeyNotFound: EXIT_NOT_FOUND, KeyNameTaken: EXIT_EXISTS})
