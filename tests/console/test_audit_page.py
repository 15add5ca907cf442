"""The Auditoría page (admins): what each signed-in person read or changed, newest first."""

import httpx

from tests.console.accounts import page_token

PHONE = "+525512345678"


class TestAuditPage:
    async def test_an_admin_sees_who_opened_a_students_record(self, as_admin: httpx.AsyncClient) -> None:
        # Without API keys this machine may use the API: the record is loaded through it.
        assert (await as_admin.put(f"/students/{PHONE}", json={"name": "Ana Pérez"})).status_code == 201
        assert (await as_admin.get(f"/console/students/{PHONE}")).status_code == 200

        page = await as_admin.get("/console/audit")
        assert page.status_code == 200
        assert "<h1>Auditoría</h1>" in page.text
        assert 'href="/console/audit" aria-current="page"' in page.text
        newest = page.text.index("<tbody>")
        assert page.text.index("<code>student.read</code>", newest) < page.text.index("<code>student.edit</code>")
        assert "admin@example.edu" in page.text
        assert "Ana Pérez" not in page.text

    async def test_a_user_change_in_the_console_is_recorded_with_its_author(self, as_admin: httpx.AsyncClient) -> None:
        token = await page_token(as_admin, "/console/users")
        form = {"csrf_token": token, "email": "nueva@example.edu", "role": "agent", "password": "nueva-password-1"}
        assert (await as_admin.post("/console/users", data=form)).status_code == 303

        page = (await as_admin.get("/console/audit")).text
        assert "<code>user.add</code>" in page
        assert "admin@example.edu" in page
        assert "nueva@example.edu" in page

    async def test_an_agent_may_not_open_it(self, as_agent: httpx.AsyncClient) -> None:
        assert (await as_agent.get("/console/audit")).status_code == 403
