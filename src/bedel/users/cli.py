"""`bedel users add|list|disable|enable|reset-password`: the staff accounts of the console.

Passwords come from a hidden prompt (typed twice), or from the first line of standard input
when it is not a terminal; they are never printed or logged.
"""

import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.audit import service as audit
from bedel.audit.models import Action
from bedel.auth import Caller
from bedel.commands import EXIT_EXISTS, EXIT_NOT_FOUND, run_in_transaction
from bedel.users import service
from bedel.users.models import StaffRole, StaffUser
from bedel.users.service import EmailTaken, UserNotFound

T = TypeVar("T")
Email = Annotated[str, typer.Argument(metavar="EMAIL", help="The account's email (any case)")]

app = typer.Typer(help="Staff accounts of the console (/console)", no_args_is_help=True)


@app.command()
def add(
    email: Email,
    role: Annotated[StaffRole, typer.Option(help="admin: everything; agent: conversations and handoffs")],
) -> None:
    """Add an account; its password is asked for (or read from standard input)."""
    password = _read_password()

    async def work(session: AsyncSession) -> StaffUser:
        user = await service.add_user(session, email, role, password)
        await audit.record(session, Caller.command_line(), Action.user_add, target=user.email, detail={"role": role})
        return user

    user = _run(work)
    typer.echo(f"added {user.role} {user.email}")


@app.command("list")
def list_users() -> None:
    """Every account: email, role, status and last sign-in."""
    for user in _run(service.list_users):
        last = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "never"
        status = "disabled" if user.disabled else "active"
        typer.echo(f"{user.email}  {user.role:<5}  {status:<8}  last sign-in {last}")


@app.command()
def disable(email: Email) -> None:
    """Disable an account: its sessions end at once."""
    typer.echo(f"disabled {_change(email, service.disable_user, Action.user_disable).email}")


@app.command()
def enable(email: Email) -> None:
    """Enable a disabled account again."""
    typer.echo(f"enabled {_change(email, service.enable_user, Action.user_enable).email}")


@app.command("reset-password")
def reset_password(email: Email) -> None:
    """Set a new password (asked for, or read from standard input); the account's sessions end."""
    password = _read_password()

    async def reset(session: AsyncSession, user: StaffUser) -> None:
        await service.reset_password(session, user, password)

    user = _change(email, reset, Action.user_password_reset)
    typer.echo(f"password reset for {user.email}; its sessions have ended")


def _change(email: str, change: Callable[[AsyncSession, StaffUser], Awaitable[None]], action: Action) -> StaffUser:
    """Make `change` to the account with `email` and record it in the audit log as `action`."""

    async def work(session: AsyncSession) -> StaffUser:
        user = await service.find_user(session, email)
        await change(session, user)
        await audit.record(session, Caller.command_line(), action, target=user.email)
        return user

    return _run(work)


def _read_password() -> str:
    if sys.stdin.isatty():
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\r\n")


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    return run_in_transaction(work, {UserNotFound: EXIT_NOT_FOUND, EmailTaken: EXIT_EXISTS})
