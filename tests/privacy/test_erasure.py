"""Erasure (ARCO cancellation): a student who reached Bedel by every path is erased, and then no
table of the schema holds their phone (in any shape), name, email, matrícula, CURP or vendor ids,
while another student's data is exactly as it was. Runs on SQLite and PostgreSQL."""

import itertools
import json
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import inspect, make_url, text

from bedel.config import Settings
from bedel.db import Base, create_engine
from bedel.privacy.holdings import HOLDINGS
from tests.channels.test_whatsapp import all_jobs_finished
from tests.channels.vendors import (
    CHANNEL_SETTINGS,
    GRAPH_BASE,
    GRAPH_MESSAGES_URL,
    LOOKASIDE_URL,
    TWILIO_MESSAGES_URL,
    button_reply,
    graph_media,
    graph_sent,
    graph_sent_to_user,
    image_message,
    sent_buttons,
    signed,
    text_message,
    twilio_form,
    twilio_sent,
    twilio_signed,
    username_message,
)
from tests.mailbox import Mailbox
from tests.polling import eventually

LUCIA_WA_ID, LUCIA = "5215512345678", "+525512345678"
MARIO_WA_ID, MARIO = "5215587654321", "+525587654321"
STUDENTS = (
    "matricula,nombre,telefono,adeudo,correo,curp\n"
    "A20417,Lucía Pérez,+52 55 1234 5678,4500,lucia.perez@alumnos.example.edu,PEPL040315MDFRRC09\n"
    "A20988,Mario Soto,+52 55 8765 4321,1200,mario.soto@alumnos.example.edu,SOMM030701HDFTRR01\n"
)
# Lucía verifies from a WhatsApp username; someone else claims her matrícula and never enters the code.
LUCIA_BSUID, CLAIMANT_BSUID = "MX.1502576394655843", "MX.7766554433221100"
# A photo whose metadata names her, as a phone's camera may.
PHOTO = b"\xff\xd8\xff\xe1\x00\x40Exif\x00\x00Artist=Luc\xc3\xada P\xc3\xa9rez " + bytes(range(256)) * 4
IMAGE_MEDIA_ID = "1003383421387256"

# Every shape her identifiers can take: canonical, WhatsApp's wa_id, Twilio's From, as the school wrote them.
LUCIA_NEEDLES = (
    "5512345678",
    "55 1234 5678",
    "55-1234-5678",
    "Lucía Pérez",
    "Pérez",
    "lucia.perez@alumnos.example.edu",
    "A20417",
    "PEPL040315MDFRRC09",
    LUCIA_BSUID,
    CLAIMANT_BSUID,
)


def needle_forms(needles: tuple[str, ...]) -> set[str]:
    """Each identifier as written, as JSON escapes it (SQLite keeps JSON as escaped text), and as the
    full-text index keeps its words (lower case, no accents)."""
    folded = (
        "".join(c for c in unicodedata.normalize("NFKD", n.lower()) if not unicodedata.combining(c)) for n in needles
    )
    return {form for needle in (*needles, *folded) for form in (needle, json.dumps(needle)[1:-1])}


def disk_holds(sqlite_url: str, needles: tuple[str, ...]) -> list[str]:
    """The needles found in an SQLite database's files, its write-ahead log included."""
    path = Path(make_url(sqlite_url).database or "")
    data = b"".join(file.read_bytes() for file in path.parent.glob(f"{path.name}*"))
    return [form for form in needle_forms(needles) if form.encode() in data]


async def scan(database_url: str, needles: tuple[str, ...]) -> list[str]:
    """Every value of every column of every table in the database that holds one of the needles."""
    forms = needle_forms(needles)
    engine = create_engine(database_url)
    found: list[str] = []
    async with engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        assert set(Base.metadata.tables) <= set(tables)
        for table in tables:
            for row in await connection.execute(text(f'SELECT * FROM "{table}"')):
                for column, value in row._mapping.items():
                    shown = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                    found += [f"{table}.{column} holds {form!r}" for form in forms if form in shown]
    await engine.dispose()
    return found


class Vendors:
    """Meta's Graph API (sends and media), Twilio's Messages API, and the code read from the mailbox."""

    def __init__(self, router: respx.MockRouter, mailbox: Mailbox) -> None:
        ids = (f"wamid.out{n}" for n in itertools.count(1))
        self.graph = router.post(GRAPH_MESSAGES_URL).mock(side_effect=lambda request: self._sent(request, next(ids)))
        router.get(f"{GRAPH_BASE}/{IMAGE_MEDIA_ID}").mock(
            return_value=graph_media(IMAGE_MEDIA_ID, "image/jpeg", len(PHOTO))
        )
        router.get(LOOKASIDE_URL).mock(
            return_value=httpx.Response(200, content=PHOTO, headers={"content-type": "image/jpeg"})
        )
        self.twilio = router.post(TWILIO_MESSAGES_URL).mock(return_value=twilio_sent(f"whatsapp:+{LUCIA_WA_ID}", "ok"))
        self.mailbox = mailbox

    @staticmethod
    def _sent(request: httpx.Request, wamid: str) -> httpx.Response:
        sent = json.loads(request.content)
        return graph_sent_to_user(sent["recipient"]) if "recipient" in sent else graph_sent(sent["to"], wamid)

    def code(self) -> str:
        body = self.mailbox.messages[-1].get_payload(decode=True)
        assert isinstance(body, bytes)
        (code,) = re.findall(r"\b\d{6}\b", body.decode())
        return str(code)


class School:
    """Drives the app the way the school, students and vendors do; waits for each reply."""

    def __init__(self, client: httpx.AsyncClient, vendors: Vendors, database_url: str) -> None:
        self.client, self.vendors, self.database_url = client, vendors, database_url
        self.sent = 0

    async def webhook(self, payload: dict[str, Any], replies: int = 1) -> list[httpx.Request]:
        before = self.vendors.graph.call_count
        body, headers = signed(payload)
        assert (await self.client.post("/webhooks/whatsapp", content=body, headers=headers)).status_code == 200
        await eventually(lambda: self.vendors.graph.call_count >= before + replies)
        return [call.request for call in self.vendors.graph.calls[before:]]

    async def whatsapp(self, wa_id: str, body: str) -> list[httpx.Request]:
        self.sent += 1
        return await self.webhook(text_message(wa_id, body, f"wamid.in{self.sent}"))

    async def username(self, user_id: str, body: str) -> None:
        self.sent += 1
        await self.webhook(username_message(user_id, body, f"wamid.in{self.sent}"))

    async def twilio(self, wa_id: str, body: str) -> None:
        self.sent += 1
        before = self.vendors.twilio.call_count
        form, headers = twilio_signed(twilio_form(wa_id, body, f"SM{self.sent:032d}"))
        assert (await self.client.post("/webhooks/twilio", content=form, headers=headers)).status_code == 200
        await eventually(lambda: self.vendors.twilio.call_count > before)

    async def chat(self, phone: str, question: str) -> None:
        response = await self.client.post("/chat", json={"phone": phone, "question": question})
        assert response.status_code == 200, response.text

    async def thread_id(self, phone: str) -> str:
        return str((await self.client.get("/threads", params={"phone": phone})).json()["items"][0]["id"])

    async def settle(self) -> None:
        await eventually(lambda: all_jobs_finished(self.database_url))

    async def export(self, phone: str) -> dict[str, Any]:
        response = await self.client.get(f"/students/{phone}/export")
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture
def settings(make_settings: Callable[..., Settings], smtp_server: tuple[Mailbox, int]) -> Settings:
    return make_settings(
        **CHANNEL_SETTINGS | {"campaign_rate_email": 0},
        identity_verification_field="email_code",
        smtp_host="127.0.0.1",
        smtp_port=smtp_server[1],
        smtp_from="Universidad <avisos@example.edu>",
        smtp_security="none",
    )


@pytest.fixture
async def school(client: httpx.AsyncClient, smtp_server: tuple[Mailbox, int], clean_database: str) -> Any:
    with respx.mock(assert_all_called=False) as router:
        yield School(client, Vendors(router, smtp_server[0]), clean_database)


async def reach_by_every_path(school: School) -> None:
    """Lucía (and Mario, a little) reach Bedel by every path that stores something about a student."""
    client = school.client
    imported = await client.post("/students/import", files={"file": ("alumnos.csv", STUDENTS, "text/csv")})
    assert imported.status_code == 200, imported.text
    await school.chat("+52 1 55 1234 5678", "Soy Lucía Pérez, matrícula A20417, correo lucia.perez@alumnos.example.edu")
    await school.chat(MARIO, "¿Cuándo empiezan las clases?")
    await school.whatsapp(MARIO_WA_ID, "Hola, soy Mario Soto")
    await school.webhook(image_message(LUCIA_WA_ID, "wamid.photo"))
    (answer,) = await school.whatsapp(LUCIA_WA_ID, "¿cuánto debo?")
    yes = next(button for button in sent_buttons(answer) if ":yes:" in button)
    await school.webhook(button_reply(LUCIA_WA_ID, "wamid.tap", yes, "Sí", replied_to="wamid.out1"), replies=0)
    # Verified from a username by a code emailed to her; another username claims her matrícula and stops there.
    await school.username(LUCIA_BSUID, "A20417")
    await school.username(LUCIA_BSUID, school.vendors.code())
    await school.username(CLAIMANT_BSUID, "A20417")
    campaign = {
        "name": "Adeudos",
        "channel": "email",
        "message": {"subject": "Tu adeudo, {{ name }}", "text": "Debes ${{ adeudo }}."},
        "audience": {"filter": "adeudo > 0"},
    }
    created = (await client.post("/campaigns", json=campaign)).json()
    await client.post(f"/campaigns/{created['id']}/start")
    await eventually(lambda: len(school.vendors.mailbox.messages) == 4)
    thread = await school.thread_id(LUCIA)
    await client.patch(f"/threads/{thread}", json={"status": "handoff"})
    await client.post(f"/threads/{thread}/messages", json={"text": "Hola Lucía Pérez, te ayudo con tu adeudo."})
    await school.twilio(LUCIA_WA_ID, "BAJA")
    await school.settle()


def untouched(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """The same holdings, but for the audit entries added since: the export before is one."""
    audit_before, audit_after = before["holdings"].pop("audit"), after["holdings"].pop("audit")
    return bool(before["holdings"] == after["holdings"] and audit_after[: len(audit_before)] == audit_before)


class TestErasure:
    async def test_nothing_of_the_student_is_left_in_any_table_and_no_one_else_is_touched(
        self, school: School, clean_database: str
    ) -> None:
        await reach_by_every_path(school)
        lucia = await school.export(LUCIA)
        mario = await school.export(MARIO)
        # The scenario reaches every kind of data Bedel holds about a student.
        assert [name for name, rows in lucia["holdings"].items() if not rows] == []
        # Files are listed, not copied; secrets are never exported.
        assert lucia["holdings"]["attachments"][0]["mime_type"] == "image/jpeg"
        assert "content" not in lucia["holdings"]["attachments"][0]
        assert all("code_hash" not in row for row in lucia["holdings"]["verification_attempts"])
        assert await scan(clean_database, LUCIA_NEEDLES) != []

        response = await school.client.delete(f"/students/{LUCIA}", params={"erase": "true"})

        assert response.status_code == 200, response.text
        receipt = response.json()
        # Her export is audited too, after it read the log: one more entry about her.
        exported = {holding.name: len(lucia["holdings"][holding.name]) for holding in reversed(HOLDINGS)}
        assert receipt["removed"] == exported | {"audit": exported["audit"] + 1}
        assert await scan(clean_database, LUCIA_NEEDLES) == []
        if clean_database.startswith("sqlite"):
            # Not a byte left on disk either: not in free pages, the full-text index or the write-ahead log.
            await eventually(lambda: disk_holds(clean_database, LUCIA_NEEDLES) == [])
        assert untouched(mario, await school.export(MARIO))
        assert (await school.client.get(f"/students/{LUCIA}/export")).status_code == 404
        erasures = (await school.client.get("/erasures")).json()
        assert [erasure["id"] for erasure in erasures] == [receipt["id"]]
