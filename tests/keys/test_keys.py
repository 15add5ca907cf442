"""API keys kept in the database: made with a role, recognised by hash, revoked at once on every
replica, their last use written at most once a minute; on SQLite and PostgreSQL."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from bedel.config import Settings
from bedel.db import create_engine, create_sessionmaker, session_scope, utcnow
from bedel.keys import service
from bedel.keys.models import ApiKey, KeyRole
from bedel.keys.service import KeyNameTaken, KeysMade
from tests.console.accounts import MovableClock

CHAT = {"phone": "+52155667788", "question": "Hola, necesito ayuda."}


async def make_key(database_url: str, name: str, role: KeyRole) -> str:
    engine = create_engine(database_url)
    try:
        async for session in session_scope(create_sessionmaker(engine)):
            _, secret = await service.create_key(session, name, role)
        return secret
    finally:
        await engine.dispose()


async def revoke(database_url: str, name: str) -> None:
    engine = create_engine(database_url)
    try:
        async for session in session_scope(create_sessionmaker(engine)):
            await service.revoke_key(session, name, utcnow())
    finally:
        await engine.dispose()


async def stored_key(database_url: str, name: str) -> ApiKey:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            keys = await service.list_keys(session)
        return next(key for key in keys if key.name == name)
    finally:
        await engine.dispose()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


class TestRoles:
    async def test_a_client_key_may_chat_but_not_read_threads(
        self, make_client: Callable[..., Any], settings: Settings, clean_database: str
    ) -> None:
        secret = await make_key(clean_database, "sitio web", KeyRole.client)
        async with make_client(settings) as client:
            assert (await client.post("/chat", json=CHAT, headers=bearer(secret))).status_code == 200
            assert (await client.get("/threads", headers=bearer(secret))).status_code == 403

    async def test_a_staff_key_reads_threads(
        self, make_client: Callable[..., Any], settings: Settings, clean_database: str
    ) -> None:
        secret = await make_key(clean_database, "mesa de ayuda", KeyRole.staff)
        async with make_client(settings) as client:
            await client.post("/chat", json=CHAT, headers=bearer(secret))
            response = await client.get("/threads", headers=bearer(secret))
        assert response.status_code == 200
        assert len(response.json()["items"]) == 1

    async def test_with_a_key_in_the_database_no_key_is_a_401_even_on_this_machine(
        self, make_client: Callable[..., Any], settings: Settings, clean_database: str
    ) -> None:
        await make_key(clean_database, "sitio web", KeyRole.client)
        async with make_client(settings) as client:
            missing = await client.post("/chat", json=CHAT)
            wrong = await client.post("/chat", json=CHAT, headers=bearer("bdl_guess"))
        assert (missing.status_code, wrong.status_code) == (401, 401)

    async def test_the_first_key_made_while_serving_is_required_from_the_next_check_on(
        self,
        make_client: Callable[..., Any],
        settings: Settings,
        clean_database: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # Without keys the answer "none made" is asked again after RECHECK_S (a second); here at once.
        monkeypatch.setattr(KeysMade, "RECHECK_S", 0.0)
        async with make_client(settings) as client:
            before = await client.post("/chat", json=CHAT)
            await make_key(clean_database, "sitio web", KeyRole.client)
            after = await client.post("/chat", json=CHAT)
        assert (before.status_code, after.status_code) == (200, 401)

    async def test_keys_in_settings_and_in_the_database_work_together(
        self, make_client: Callable[..., Any], make_settings: Callable[..., Settings], clean_database: str
    ) -> None:
        secret = await make_key(clean_database, "sitio web", KeyRole.client)
        async with make_client(make_settings(staff_api_keys="old-staff-key")) as client:
            from_settings = await client.get("/threads", headers=bearer("old-staff-key"))
            from_database = await client.post("/chat", json=CHAT, headers=bearer(secret))
        assert (from_settings.status_code, from_database.status_code) == (200, 200)


class TestStorage:
    async def test_only_a_hash_of_the_key_is_stored(self, clean_database: str) -> None:
        secret = await make_key(clean_database, "sitio web", KeyRole.client)
        engine = create_engine(clean_database)
        async with engine.connect() as connection:
            rows = (await connection.execute(text("SELECT * FROM api_keys"))).all()
        await engine.dispose()
        assert secret.startswith("bdl_") and len(secret) > 40
        assert len(rows) == 1
        assert not any(secret in str(value) or secret[4:] in str(value) for value in rows[0])

    async def test_a_name_names_one_key(self, clean_database: str) -> None:
        await make_key(clean_database, "sitio web", KeyRole.client)
        with pytest.raises(KeyNameTaken):
            await make_key(clean_database, " sitio web ", KeyRole.staff)

    async def test_every_key_is_different(self, clean_database: str) -> None:
        first = await make_key(clean_database, "uno", KeyRole.client)
        second = await make_key(clean_database, "dos", KeyRole.client)
        assert first != second


class TestRevocation:
    async def test_a_revoked_key_is_refused_at_once_by_every_replica(
        self, make_client: Callable[..., Any], settings: Settings, clean_database: str
    ) -> None:
        secret = await make_key(clean_database, "sitio web", KeyRole.client)
        async with make_client(settings) as first, make_client(settings) as second:
            before = [(await r.post("/chat", json=CHAT, headers=bearer(secret))).status_code for r in (first, second)]
            await revoke(clean_database, "sitio web")
            after = [(await r.post("/chat", json=CHAT, headers=bearer(secret))).status_code for r in (first, second)]
        assert before == [200, 200]
        assert after == [401, 401]


class TestLastUse:
    async def test_the_last_use_is_written_at_most_once_a_minute(
        self, make_client: Callable[..., Any], settings: Settings, clean_database: str
    ) -> None:
        secret = await make_key(clean_database, "sitio web", KeyRole.client)
        assert (await stored_key(clean_database, "sitio web")).last_used_at is None
        clock = MovableClock()
        first_use = clock.now
        async with make_client(settings, clock) as client:
            await client.post("/chat", json=CHAT, headers=bearer(secret))
            clock.advance(seconds=50)
            await client.post("/chat", json=CHAT, headers=bearer(secret))
            within_the_minute = (await stored_key(clean_database, "sitio web")).last_used_at
            clock.advance(seconds=20)
            await client.post("/chat", json=CHAT, headers=bearer(secret))
            after_the_minute = (await stored_key(clean_database, "sitio web")).last_used_at
        assert within_the_minute is not None and after_the_minute is not None
        assert abs(within_the_minute.replace(tzinfo=first_use.tzinfo) - first_use) < timedelta(milliseconds=1)
        assert abs(after_the_minute.replace(tzinfo=first_use.tzinfo) - clock.now) < timedelta(milliseconds=1)
