"""Staff accounts: added, listed, disabled and enabled, their passwords reset.

Business rules: an email is one account whatever its case; disabling an account or
resetting its password ends its sessions at once; the last active admin cannot be
disabled, so somebody can always manage the users.
"""

import asyncio
import re
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from bedel.errors import Conflict, InvalidInput, NotFound
from bedel.users.models import StaffRole, StaffUser, ThrottleKind
from bedel.users.passwords import check_password, hash_password
from bedel.users.repository import LoginThrottleRepository, StaffSessionRepository, StaffUserRepository

# One "@", something on each side, a dot in the domain, no spaces: typos caught, nothing more promised.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class InvalidEmail(InvalidInput):
    code = "invalid_email"


class EmailTaken(Conflict):
    code = "email_taken"


class LastAdmin(Conflict):
    code = "last_admin"


class UserNotFound(NotFound):
    code = "user_not_found"


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def add_user(session: AsyncSession, email: str, role: StaffRole, password: str) -> StaffUser:
    email = normalize_email(email)
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise InvalidEmail(f"'{email}' is not an email address", field="email")
    check_password(password)
    users = StaffUserRepository.from_session(session)
    if await users.by_email(email) is not None:
        raise EmailTaken(f"{email} already has an account", field="email")
    user = StaffUser(email=email, role=role, password_hash=await asyncio.to_thread(hash_password, password))
    await users.add(user)
    return user


async def list_users(session: AsyncSession) -> Sequence[StaffUser]:
    return await StaffUserRepository.from_session(session).all()


async def find_user(session: AsyncSession, email: str) -> StaffUser:
    user = await StaffUserRepository.from_session(session).by_email(normalize_email(email))
    if user is None:
        raise UserNotFound(f"no account has the email {normalize_email(email)}", field="email")
    return user


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> StaffUser:
    user = await StaffUserRepository.from_session(session).by_id(user_id)
    if user is None:
        raise UserNotFound("no such account")
    return user


async def disable_user(session: AsyncSession, user: StaffUser) -> None:
    if user.disabled:
        return
    if user.role == StaffRole.admin and await StaffUserRepository.from_session(session).active_admins() <= 1:
        raise LastAdmin(f"{user.email} is the last active admin; add or enable another admin first")
    user.disabled = True
    await StaffSessionRepository.from_session(session).end_all_of(user.id)
    await session.flush()


async def enable_user(session: AsyncSession, user: StaffUser) -> None:
    user.disabled = False
    await session.flush()


async def reset_password(session: AsyncSession, user: StaffUser, password: str) -> None:
    """A new password: every session of the account ends and its lock-out is lifted."""
    check_password(password)
    user.password_hash = await asyncio.to_thread(hash_password, password)
    await StaffSessionRepository.from_session(session).end_all_of(user.id)
    await LoginThrottleRepository.from_session(session).clear(ThrottleKind.account, user.email)
    await session.flush()
