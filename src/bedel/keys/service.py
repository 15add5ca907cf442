"""API keys: created, listed with their last use, revoked, and recognised on each request.

Business rules: a key is shown once, when it is created, and only its SHA-256 is kept; a name
names one key, revoked or not, so the audit log's names stay unambiguous; a revoked key is
refused from the next request on, on every replica, because each request asks the database;
its last use is written at most once a minute, so a busy key does not write on every request.
Once a key has been made, every caller needs one: revoking them all locks the API, it does not open it.
"""

import hashlib
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bedel.db import as_utc
from bedel.errors import Conflict, InvalidInput, NotFound
from bedel.keys.models import ApiKey, KeyRole
from bedel.keys.repository import ApiKeyRepository

PREFIX = "bdl_"
MAX_NAME = 100
USE_PRECISION = timedelta(minutes=1)


class KeyNameTaken(Conflict):
    code = "key_name_taken"


class KeyNotFound(NotFound):
    code = "key_not_found"


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_key(session: AsyncSession, name: str, role: KeyRole) -> tuple[ApiKey, str]:
    """A new key and its secret, which is not stored and cannot be shown again."""
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"a key's name needs 1 to {MAX_NAME} characters", field="name")
    keys = ApiKeyRepository.from_session(session)
    if await keys.by_name(name) is not None:
        raise KeyNameTaken(f"a key is already named {name!r}; choose another name", field="name")
    secret = PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=name, role=role, key_hash=key_hash(secret))
    await keys.add(key)
    return key, secret


async def list_keys(session: AsyncSession) -> Sequence[ApiKey]:
    return await ApiKeyRepository.from_session(session).all()


async def revoke_key(session: AsyncSession, name: str, now: datetime) -> ApiKey:
    key = await ApiKeyRepository.from_session(session).by_name(name.strip())
    if key is None:
        raise KeyNotFound(f"no key is named {name.strip()!r}", field="name")
    if key.revoked_at is None:
        key.revoked_at = now
        await session.flush()
    return key


@dataclass(frozen=True)
class ActiveKey:
    name: str
    role: KeyRole


async def find_key(session: AsyncSession, secret: str, now: datetime) -> ActiveKey | None:
    """The active key `secret` is, with its use recorded; None for an unknown or revoked key."""
    keys = ApiKeyRepository.from_session(session)
    found = await keys.active_by_hash(key_hash(secret))
    if found is None:
        return None
    key_id, name, role, last_used_at = found
    stale_before = now - USE_PRECISION
    # Most requests write nothing; the UPDATE checks again, as another replica may have written.
    if last_used_at is None or as_utc(last_used_at) < stale_before:
        await keys.touch(key_id, now, stale_before)
    return ActiveKey(name, KeyRole(role))


async def keys_made(session: AsyncSession) -> bool:
    """Whether a key was ever made here: from then on every caller needs one, even when all are revoked."""
    return await ApiKeyRepository.from_session(session).any()


class KeysMade:
    """`keys_made`, asked of the database at most once a second while the answer is no.

    Keys are never deleted (revoking marks them), so a yes stays yes; a no is asked again after
    `RECHECK_S`, so a first key made on another replica or with `bedel keys create` is required
    everywhere within that time, without a query on each request of a deployment with no keys.
    """

    RECHECK_S = 1.0

    def __init__(self) -> None:
        self._made = False
        self._checked_at = -math.inf

    async def ask(self, sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
        if self._made or time.monotonic() - self._checked_at < self.RECHECK_S:
            return self._made
        async with sessionmaker() as session:
            self._made = await keys_made(session)
        self._checked_at = time.monotonic()
        return self._made
