"""Sign-in rules below the console: hashes brought up to date, sessions swept."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.db import utcnow
from bedel.users import passwords, service
from bedel.users.models import StaffRole, StaffSession
from bedel.users.sessions import LoginPolicy, SignedIn, sign_in
from tests.users.test_passwords import STRONGER

POLICY = LoginPolicy(idle=timedelta(minutes=30), lockout=timedelta(minutes=5))


class TestSignIn:
    async def test_a_hash_made_with_older_parameters_is_redone_at_sign_in(
        self, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        user = await service.add_user(session, "ana@example.edu", StaffRole.agent, "ana-password-1")
        monkeypatch.setattr(passwords, "_hasher", STRONGER)
        result = await sign_in(session, "ana@example.edu", "ana-password-1", "127.0.0.1", POLICY, utcnow())
        assert isinstance(result, SignedIn)
        assert user.password_hash.startswith("$argon2id$v=19$m=16,t=2,p=1$")

    async def test_sessions_idle_past_the_limit_are_swept_at_the_next_sign_in(self, session: AsyncSession) -> None:
        await service.add_user(session, "ana@example.edu", StaffRole.agent, "ana-password-1")
        now = utcnow()
        await sign_in(session, "ana@example.edu", "ana-password-1", "127.0.0.1", POLICY, now)
        await sign_in(session, "ana@example.edu", "ana-password-1", "127.0.0.1", POLICY, now + timedelta(minutes=31))
        assert await session.scalar(select(func.count()).select_from(StaffSession)) == 1
