"""Signing in and out: sessions in the database, growing lock-outs, inactivity, disabled accounts."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bedel.config import Settings
from tests.console.accounts import ADMIN, AGENT, MovableClock, page_token, sign_in


async def signed_in_home(client: httpx.AsyncClient) -> bool:
    return (await client.get("/console")).status_code == 200


class TestSignIn:
    async def test_right_password_opens_a_session(self, console: httpx.AsyncClient) -> None:
        response = await sign_in(console, "Admin@Example.EDU", ADMIN[1])
        assert response.status_code == 303
        assert response.headers["location"] == "/console"
        home = await console.get("/console")
        assert home.status_code == 200
        assert "admin@example.edu" in home.text

    async def test_session_cookie_is_http_only_lax_and_for_the_console(self, console: httpx.AsyncClient) -> None:
        cookie = (await sign_in(console, *ADMIN)).headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        assert "path=/console" in cookie
        assert "secure" not in cookie  # development: plain http on this machine

    async def test_cookies_are_secure_outside_development(
        self, make_client: Callable[..., Any], make_settings: Callable[..., Settings], accounts: None
    ) -> None:
        settings = make_settings(env="production", staff_api_keys="staff-key")
        async with make_client(settings) as client:
            login = await client.get("/console/login")
            assert "secure" in login.headers["set-cookie"].lower()

    async def test_wrong_password_and_unknown_email_get_the_same_answer(self, console: httpx.AsyncClient) -> None:
        wrong = await sign_in(console, ADMIN[0], "not-the-password")
        unknown = await sign_in(console, "nobody@example.edu", "not-the-password")
        assert wrong.status_code == unknown.status_code == 401
        assert "El correo o la contraseña no son correctos." in wrong.text
        assert "El correo o la contraseña no son correctos." in unknown.text
        assert not await signed_in_home(console)

    async def test_no_password_reaches_the_logs(
        self, console: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
    ) -> None:
        await sign_in(console, ADMIN[0], "wrong-password-typed")
        await sign_in(console, *ADMIN)
        logged = capsys.readouterr()
        assert "/console/login" in logged.out + logged.err
        assert "wrong-password-typed" not in logged.out + logged.err
        assert ADMIN[1] not in logged.out + logged.err

    async def test_the_page_asked_for_opens_after_signing_in(self, as_admin: httpx.AsyncClient) -> None:
        await as_admin.post("/console/logout", data={"csrf_token": await page_token(as_admin)})
        redirect = await as_admin.get("/console/users")
        assert redirect.headers["location"] == "/console/login?next=/console/users"
        login = await as_admin.get(redirect.headers["location"])
        assert 'name="next" value="/console/users"' in login.text

    async def test_a_next_page_off_the_console_goes_home(self, console: httpx.AsyncClient) -> None:
        login = await console.get("/console/login", params={"next": "//evil.example/console"})
        assert 'name="next" value="/console"' in login.text


class TestLockOut:
    async def test_five_wrong_passwords_lock_the_account(self, console: httpx.AsyncClient) -> None:
        answers = [await sign_in(console, ADMIN[0], f"wrong-{n}") for n in range(5)]
        assert [a.status_code for a in answers] == [401, 401, 401, 401, 429]
        right = await sign_in(console, *ADMIN)
        assert right.status_code == 429
        assert right.headers["retry-after"] == "300"
        assert "Vuelve a intentarlo en 5 min." in right.text

    async def test_the_lock_lifts_after_its_time(self, console: httpx.AsyncClient, clock: MovableClock) -> None:
        for n in range(5):
            await sign_in(console, ADMIN[0], f"wrong-{n}")
        clock.advance(minutes=5, seconds=1)
        assert (await sign_in(console, *ADMIN)).status_code == 303

    async def test_each_lock_out_lasts_twice_the_one_before(
        self, console: httpx.AsyncClient, clock: MovableClock
    ) -> None:
        lengths = []
        for _ in range(3):
            answers = [await sign_in(console, ADMIN[0], f"wrong-{n}") for n in range(5)]
            lengths.append(int(answers[-1].headers["retry-after"]))
            clock.advance(seconds=lengths[-1] + 1)
        assert lengths == [300, 600, 1200]

    async def test_signing_in_forgives_earlier_mistakes(self, console: httpx.AsyncClient) -> None:
        for n in range(4):
            await sign_in(console, ADMIN[0], f"wrong-{n}")
        assert (await sign_in(console, *ADMIN)).status_code == 303
        await console.post("/console/logout", data={"csrf_token": await page_token(console)})
        answers = [await sign_in(console, ADMIN[0], f"wrong-{n}") for n in range(4)]
        assert {a.status_code for a in answers} == {401}

    async def test_a_lock_out_also_holds_on_another_replica(
        self, console: httpx.AsyncClient, other_replica: httpx.AsyncClient
    ) -> None:
        for n in range(5):
            await sign_in(console, ADMIN[0], f"wrong-{n}")
        assert (await sign_in(other_replica, *ADMIN)).status_code == 429

    async def test_an_email_without_account_locks_like_one_with(self, console: httpx.AsyncClient) -> None:
        answers = [await sign_in(console, "nobody@example.edu", f"wrong-{n}") for n in range(5)]
        assert answers[-1].status_code == 429

    async def test_twenty_failures_from_one_address_lock_the_address(
        self, make_client: Callable[..., Any], settings: Settings, clock: MovableClock, accounts: None
    ) -> None:
        async with make_client(settings, clock) as client:
            # Four emails, five tries each: no email reaches its own limit before the address does.
            for n in range(19):
                await sign_in(client, f"guess{n % 4}@example.edu", f"wrong-{n}")
            twentieth = await sign_in(client, "guess4@example.edu", "wrong")
            refused = await sign_in(client, *AGENT)
        assert twentieth.status_code == 429
        assert refused.status_code == 429

    async def test_another_address_is_not_locked(
        self, make_client: Callable[..., Any], settings: Settings, accounts: None
    ) -> None:
        bedel = make_client(settings)
        async with bedel as client:
            for n in range(20):
                await sign_in(client, f"guess{n % 4}@example.edu", f"wrong-{n}")
            elsewhere = httpx.ASGITransport(app=bedel.app, client=("203.0.113.7", 4000))
            async with httpx.AsyncClient(transport=elsewhere, base_url="http://bedel.test") as other:
                assert (await sign_in(other, *AGENT)).status_code == 303


class TestSessions:
    async def test_a_session_ends_after_thirty_idle_minutes(
        self, as_agent: httpx.AsyncClient, clock: MovableClock
    ) -> None:
        clock.advance(minutes=30, seconds=1)
        response = await as_agent.get("/console")
        assert response.status_code == 303
        assert response.headers["location"].startswith("/console/login")
        login = await as_agent.get(response.headers["location"])
        assert "Tu sesión terminó." in login.text

    async def test_using_the_console_keeps_the_session(self, as_agent: httpx.AsyncClient, clock: MovableClock) -> None:
        for _ in range(3):
            clock.advance(minutes=20)
            assert await signed_in_home(as_agent)

    async def test_the_idle_time_is_a_setting(
        self,
        make_client: Callable[..., Any],
        make_settings: Callable[..., Settings],
        clock: MovableClock,
        accounts: None,
    ) -> None:
        async with make_client(make_settings(console_session_idle_minutes=5), clock) as client:
            await sign_in(client, *AGENT)
            clock.advance(minutes=6)
            assert not await signed_in_home(client)

    async def test_signing_out_ends_the_session_for_good(self, as_agent: httpx.AsyncClient) -> None:
        cookie = as_agent.cookies["bedel_session"]
        response = await as_agent.post("/console/logout", data={"csrf_token": await page_token(as_agent)})
        assert response.headers["location"] == "/console/login"
        as_agent.cookies.set("bedel_session", cookie, domain="bedel.test", path="/console")
        assert not await signed_in_home(as_agent)

    async def test_disabling_an_account_ends_its_sessions_on_every_replica(
        self, as_agent: httpx.AsyncClient, other_replica: httpx.AsyncClient
    ) -> None:
        await sign_in(other_replica, *ADMIN)
        page = await other_replica.get("/console/users")
        agent_id = page.text.split(f"{AGENT[0]}</th>", 1)[1].split("/console/users/", 1)[1].split("/", 1)[0]
        await other_replica.post(
            f"/console/users/{agent_id}/disable", data={"csrf_token": await page_token(other_replica)}
        )
        assert not await signed_in_home(as_agent)
        assert (await sign_in(as_agent, *AGENT)).status_code == 403

    async def test_signing_in_twice_gives_two_sessions(
        self, as_agent: httpx.AsyncClient, other_replica: httpx.AsyncClient
    ) -> None:
        await sign_in(other_replica, *AGENT)
        assert as_agent.cookies["bedel_session"] != other_replica.cookies["bedel_session"]
        assert await signed_in_home(as_agent)
        assert await signed_in_home(other_replica)


@pytest.mark.parametrize("path", ["/console", "/console/users"])
async def test_without_a_session_pages_send_to_the_sign_in_page(console: httpx.AsyncClient, path: str) -> None:
    response = await console.get(path)
    assert response.status_code == 303
    assert response.headers["location"] == f"/console/login?next={path}"
