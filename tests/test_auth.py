"""API keys: clients may only chat; staff may do everything; limits answer 429 with Retry-After."""

from collections.abc import Callable
from typing import Any

import pytest

from bedel.config import Settings

CHAT = {"phone": "+52155667788", "question": "Hola, necesito ayuda."}
CLIENT = {"Authorization": "Bearer client-key"}
STAFF = {"Authorization": "Bearer staff-key"}


@pytest.fixture
def keyed_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(api_keys="client-key", staff_api_keys="staff-key,second-staff-key")


class TestKeys:
    async def test_no_key_is_a_401(self, make_client: Callable[[Settings], Any], keyed_settings: Settings) -> None:
        async with make_client(keyed_settings) as client:
            response = await client.post("/chat", json=CHAT)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"

    async def test_wrong_key_is_a_401(self, make_client: Callable[[Settings], Any], keyed_settings: Settings) -> None:
        async with make_client(keyed_settings) as client:
            response = await client.post("/chat", json=CHAT, headers={"Authorization": "Bearer nope"})
        assert response.status_code == 401

    async def test_client_key_may_chat_but_not_read_threads(
        self, make_client: Callable[[Settings], Any], keyed_settings: Settings
    ) -> None:
        async with make_client(keyed_settings) as client:
            assert (await client.post("/chat", json=CHAT, headers=CLIENT)).status_code == 200
            assert (await client.get("/threads", headers=CLIENT)).status_code == 403
            assert (await client.get("/students/+5255667788", headers=CLIENT)).status_code == 403

    async def test_staff_key_reads_threads(
        self, make_client: Callable[[Settings], Any], keyed_settings: Settings
    ) -> None:
        async with make_client(keyed_settings) as client:
            await client.post("/chat", json=CHAT, headers=CLIENT)
            response = await client.get("/threads", headers={"Authorization": "Bearer second-staff-key"})
        assert response.status_code == 200
        assert len(response.json()["items"]) == 1

    async def test_health_needs_no_key(self, make_client: Callable[[Settings], Any], keyed_settings: Settings) -> None:
        async with make_client(keyed_settings) as client:
            assert (await client.get("/healthz")).status_code == 200


class TestAssistantOverrides:
    async def test_client_key_cannot_override_the_assistant(
        self, make_client: Callable[[Settings], Any], keyed_settings: Settings
    ) -> None:
        async with make_client(keyed_settings) as client:
            body = {**CHAT, "assistant": {"temperature": 1.5}}
            response = await client.post("/chat", json=body, headers=CLIENT)
            threads = (await client.get("/threads", headers=STAFF)).json()["items"]
        assert response.status_code == 403
        assert response.json()["error"]["field"] == "assistant"
        assert threads == []

    async def test_staff_override_of_instructions_is_used(
        self, make_client: Callable[[Settings], Any], keyed_settings: Settings
    ) -> None:
        async with make_client(keyed_settings) as client:
            body = {
                **CHAT,
                "assistant": {"instructions": "Eres el asistente de {{ institution_name }}."},
            }
            response = await client.post("/chat", json=body, headers=STAFF)
        assert response.status_code == 200

    async def test_broken_override_template_is_a_422(
        self, make_client: Callable[[Settings], Any], keyed_settings: Settings
    ) -> None:
        async with make_client(keyed_settings) as client:
            body = {**CHAT, "assistant": {"instructions": "{% if %}"}}
            response = await client.post("/chat", json=body, headers=STAFF)
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "assistant.instructions"


class TestRateLimits:
    async def test_per_phone_limit_answers_429_with_retry_after(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]
    ) -> None:
        async with make_client(make_settings(rate_limit_per_phone="2/minute")) as client:
            codes = [(await client.post("/chat", json=CHAT)).status_code for _ in range(3)]
            limited = await client.post("/chat", json={**CHAT, "phone": "+52 1 55667788"})
            other_phone = await client.post("/chat", json={**CHAT, "phone": "+34612345678"})

        assert codes == [200, 200, 429]
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert other_phone.status_code == 200

    async def test_per_key_limit_counts_every_phone(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]
    ) -> None:
        settings = make_settings(api_keys="client-key", rate_limit_per_key="3/minute")
        async with make_client(settings) as client:
            codes = [
                (await client.post("/chat", json={**CHAT, "phone": f"+3461234567{n}"}, headers=CLIENT)).status_code
                for n in range(4)
            ]
        assert codes == [200, 200, 200, 429]

    @pytest.mark.redis
    async def test_limits_are_shared_through_redis(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]
    ) -> None:
        import uuid

        settings = make_settings(rate_limit_per_phone="2/minute", rate_limit_storage_url="redis://127.0.0.1:6379/15")
        phone = f"+3461{uuid.uuid4().int % 10**7:07d}"
        async with make_client(settings) as first, make_client(settings) as second:
            codes = [
                (await replica.post("/chat", json={**CHAT, "phone": phone})).status_code
                for replica in (first, second, first)
            ]
        assert codes == [200, 200, 429]


class TestWithoutKeys:
    async def test_only_this_machine_may_call(self, settings: Settings) -> None:
        import httpx

        from bedel.app import create_app

        app = create_app(settings)
        async with app.router.lifespan_context(app):
            remote = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))
            async with httpx.AsyncClient(transport=remote, base_url="http://bedel.test") as client:
                response = await client.post("/chat", json=CHAT)
        assert response.status_code == 401
        assert "BEDEL_API_KEYS" in response.json()["error"]["message"]
