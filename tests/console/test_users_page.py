"""The users page (admins): add an account, disable and enable it, reset its password."""

import re

import httpx

from tests.console.accounts import ADMIN, AGENT, page_token, sign_in

NEW = ("nueva@example.edu", "nueva-password-1")


def account_id(page: httpx.Response, email: str) -> str:
    found = re.search(rf"{re.escape(email)}(?: \(tú\))?</th>.*?/console/users/([0-9a-f-]{{36}})/", page.text, re.S)
    assert found is not None, page.text
    return found.group(1)


async def act(admin: httpx.AsyncClient, email: str, action: str, **form: str) -> httpx.Response:
    page = await admin.get("/console/users")
    return await admin.post(
        f"/console/users/{account_id(page, email)}/{action}", data={"csrf_token": await page_token(admin), **form}
    )


class TestAddAccount:
    async def test_an_added_agent_can_sign_in(
        self, as_admin: httpx.AsyncClient, other_replica: httpx.AsyncClient
    ) -> None:
        token = await page_token(as_admin, "/console/users")
        response = await as_admin.post(
            "/console/users", data={"csrf_token": token, "email": NEW[0], "role": "agent", "password": NEW[1]}
        )
        assert response.status_code == 303
        page = await as_admin.get(response.headers["location"])
        assert "Se agregó la cuenta nueva@example.edu." in page.text
        assert (await sign_in(other_replica, *NEW)).status_code == 303
        assert (await other_replica.get("/console/users")).status_code == 403

    async def test_a_short_password_is_refused_and_the_form_kept(self, as_admin: httpx.AsyncClient) -> None:
        token = await page_token(as_admin, "/console/users")
        response = await as_admin.post(
            "/console/users", data={"csrf_token": token, "email": NEW[0], "role": "admin", "password": "corta"}
        )
        assert response.status_code == 422
        assert "al menos 10 caracteres" in response.text
        assert f'value="{NEW[0]}"' in response.text
        assert 'value="admin" selected' in response.text
        assert "corta" not in response.text
        assert NEW[0] + "</th>" not in response.text

    async def test_an_email_taken_in_another_case_is_refused(self, as_admin: httpx.AsyncClient) -> None:
        token = await page_token(as_admin, "/console/users")
        response = await as_admin.post(
            "/console/users",
            data={"csrf_token": token, "email": AGENT[0].upper(), "role": "agent", "password": NEW[1]},
        )
        assert response.status_code == 409
        assert "Ya existe una cuenta con ese correo." in response.text


class TestDisableAndEnable:
    async def test_a_disabled_account_cannot_sign_in_until_enabled(
        self, as_admin: httpx.AsyncClient, other_replica: httpx.AsyncClient
    ) -> None:
        disabled = await act(as_admin, AGENT[0], "disable")
        assert "Se desactivó agent@example.edu" in (await as_admin.get(disabled.headers["location"])).text
        assert (await sign_in(other_replica, *AGENT)).status_code == 403
        await act(as_admin, AGENT[0], "enable")
        assert (await sign_in(other_replica, *AGENT)).status_code == 303

    async def test_the_last_admin_cannot_be_disabled(self, as_admin: httpx.AsyncClient) -> None:
        response = await act(as_admin, ADMIN[0], "disable")
        assert response.status_code == 409
        assert "última cuenta de administración" in response.text
        assert (await as_admin.get("/console")).status_code == 200


class TestResetPassword:
    async def test_the_new_password_works_and_the_old_sessions_end(
        self, as_admin: httpx.AsyncClient, other_replica: httpx.AsyncClient
    ) -> None:
        await sign_in(other_replica, *AGENT)
        response = await act(as_admin, AGENT[0], "password", password="otra-password-1")
        assert response.status_code == 303
        assert (await other_replica.get("/console")).status_code == 303
        assert (await sign_in(other_replica, *AGENT)).status_code == 401
        assert (await sign_in(other_replica, AGENT[0], "otra-password-1")).status_code == 303

    async def test_a_reset_lifts_a_lock_out(
        self, as_admin: httpx.AsyncClient, other_replica: httpx.AsyncClient
    ) -> None:
        for n in range(5):
            await sign_in(other_replica, AGENT[0], f"wrong-{n}")
        await act(as_admin, AGENT[0], "password", password="otra-password-1")
        assert (await sign_in(other_replica, AGENT[0], "otra-password-1")).status_code == 303

    async def test_a_weak_password_is_refused(self, as_admin: httpx.AsyncClient) -> None:
        response = await act(as_admin, AGENT[0], "password", password="corta")
        assert response.status_code == 422
        assert response.headers["hx-push-url"] == "/console/users"


async def test_a_notice_names_only_an_existing_account(as_admin: httpx.AsyncClient) -> None:
    page = await as_admin.get("/console/users", params={"notice": "added", "email": "impostor@evil.example"})
    assert "impostor@evil.example" not in page.text
