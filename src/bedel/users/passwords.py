"""Passwords, hashed with argon2id (argon2-cffi's defaults: RFC 9106's low-memory profile)."""

import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bedel.errors import InvalidInput

MIN_LENGTH = 10
# Long enough for any passphrase; longer input is refused rather than hashed.
MAX_LENGTH = 1024

_hasher = PasswordHasher()


class WeakPassword(InvalidInput):
    code = "weak_password"


def check_password(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters", field="password")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password may have at most {MAX_LENGTH} characters", field="password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)


@cache
def absent_account_hash() -> str:
    """What an email without an account is checked against: as slow as a real account, so the
    time a refusal takes does not tell whether the account exists."""
    return hash_password(secrets.token_urlsafe(16))
