"""`bedel keys create|list|revoke`: the API keys kept in the database.

A key is printed once, when it is created; afterwards only its name is known. Each creation
and revocation is recorded in the audit log, as done by the system user who ran the command.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, NoReturn, TypeVar

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from bedel import migrate
from bedel.audit import service as audit
from bedel.audit.models import Action
from bedel.auth import Caller
from bedel.config import ConfigError, load_settings
from bedel.db import create_engine, create_sessionmaker, session_scope, utcnow
from bedel.errors import BedelError
from bedel.keys import service
from bedel.keys.models import ApiKey, KeyRole
from bedel.keys.service import KeyNameTaken, KeyNotFound

# The codes of `bedel users` where they mean the same.
EXIT_INPUT = 1
EXIT_CONFIG = 2
EXIT_DATABASE = 3
EXIT_MIGRATIONS = 4
EXIT_NOT_FOUND = 7
EXIT_EXISTS = 8

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
    """Do `work` in one transaction; a refusal or a broken set-up ends the command with its code."""
    try:
        return asyncio.run(_transaction(work))
    except ConfigError as exc:
        _fail(EXIT_CONFIG, str(exc))
    except KeyNotFound as exc:
        _fail(EXIT_NOT_FOUND, exc.message)
    except KeyNameTaken as exc:
        _fail(EXIT_EXISTS, exc.message)
    except BedelError as exc:
        _fail(EXIT_INPUT, exc.message)
    except (SQLAlchemyError, OSError) as exc:
        _fail(EXIT_DATABASE, f"database error ({type(exc).__name__}); check BEDEL_DATABASE_URL")


async def _transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    engine = create_engine(load_settings().database_url)
    try:
        revision = await migrate.current_revision(engine)
        if migrate.is_pending(revision):
            _fail(EXIT_MIGRATIONS, f"the database schema is at {revision}; run `bedel db upgrade`")
        results: list[T] = []
        # Run the loop to its end: session_scope commits after its single yield.
        async for session in session_scope(create_sessionmaker(engine)):
            results.append(await work(session))
        return results[0]
    finally:
        await engine.dispose()


def _fail(code: int, message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
