"""Signing in and out of the console, with server-side sessions and growing lock-outs.

Business rules: five wrong passwords in a row for one email lock it (whether or not an
account has it, so a lock-out does not reveal which emails exist), and twenty from one
address lock that address; each lock-out lasts twice the one before, up to a day, and a
count with no failure or lock-out for a day is forgotten. A session ends when it has not
been used for the idle time, at sign-out, and when its account is disabled or its password
reset. Everything lives in the database, so every replica applies the same rules.
"""

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from bedel.config import Settings
from bedel.db import as_utc
from bedel.users.models import StaffUser, ThrottleKind
from bedel.users.passwords import absent_account_hash, hash_password, needs_rehash, verify_password
from bedel.users.repository import LoginThrottleRepository, StaffSessionRepository, StaffUserRepository
from bedel.users.service import normalize_email

ATTEMPTS_PER_ACCOUNT = 5
# An office behind one address has many people typing passwords.
ATTEMPTS_PER_ADDRESS = 20
LONGEST_LOCKOUT = timedelta(days=1)
FORGET_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class LoginPolicy:
    idle: timedelta
    lockout: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> "LoginPolicy":
        return cls(
            idle=timedelta(minutes=settings.console_session_idle_minutes),
            lockout=timedelta(minutes=settings.console_lockout_minutes),
        )


class Refusal(StrEnum):
    wrong = "wrong"  # unknown email or wrong password: the same answer for both
    locked = "locked"
    disabled = "disabled"


@dataclass(frozen=True)
class Refused:
    reason: Refusal
    retry_after: timedelta | None = None


@dataclass(frozen=True)
class SignedIn:
    user: StaffUser
    token: str  # the cookie's value; only its hash is stored


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def sign_in(
    session: AsyncSession, email: str, password: str, address: str, policy: LoginPolicy, now: datetime
) -> SignedIn | Refused:
    email = normalize_email(email)
    keys = [(ThrottleKind.account, email), (ThrottleKind.address, address)]
    throttles = LoginThrottleRepository.from_session(session)
    locked_until = await throttles.locked_until(keys, now)
    if locked_until is not None:
        return Refused(Refusal.locked, as_utc(locked_until) - now)
    user = await StaffUserRepository.from_session(session).by_email(email)
    stored = user.password_hash if user is not None else absent_account_hash()
    if user is None or not await asyncio.to_thread(verify_password, stored, password):
        return await _count_failure(throttles, keys, policy, now)
    await throttles.clear(ThrottleKind.account, email)
    if user.disabled:
        return Refused(Refusal.disabled)
    if needs_rehash(user.password_hash):
        user.password_hash = await asyncio.to_thread(hash_password, password)
    user.last_login_at = now
    token = secrets.token_urlsafe(32)
    sessions = StaffSessionRepository.from_session(session)
    await sessions.sweep(now - policy.idle)
    await sessions.open(token_hash(token), user.id, now)
    return SignedIn(user, token)


async def _count_failure(
    throttles: LoginThrottleRepository, keys: list[tuple[ThrottleKind, str]], policy: LoginPolicy, now: datetime
) -> Refused:
    await throttles.forget_before(now - FORGET_AFTER)
    locked_for: timedelta | None = None
    for kind, key in keys:
        throttle_id, failures, lockouts = await throttles.count_failure(kind, key, now)
        limit = ATTEMPTS_PER_ACCOUNT if kind is ThrottleKind.account else ATTEMPTS_PER_ADDRESS
        if failures >= limit:
            # The exponent is capped only so the product cannot overflow; the day caps the lock-out.
            duration = min(policy.lockout * 2 ** min(lockouts, 20), LONGEST_LOCKOUT)
            await throttles.lock(throttle_id, now + duration)
            locked_for = max(duration, locked_for or duration)
    if locked_for is not None:
        return Refused(Refusal.locked, locked_for)
    return Refused(Refusal.wrong)


async def resume_session(session: AsyncSession, token: str, policy: LoginPolicy, now: datetime) -> StaffUser | None:
    """The account a session cookie belongs to, or None when it has ended; each use restarts the idle time."""
    found = await StaffSessionRepository.from_session(session).with_user(token_hash(token))
    if found is None:
        return None
    staff_session, user = found
    if now - as_utc(staff_session.last_seen_at) > policy.idle:
        return None
    staff_session.last_seen_at = now
    return user


async def sign_out(session: AsyncSession, token: str) -> None:
    await StaffSessionRepository.from_session(session).end(token_hash(token))
