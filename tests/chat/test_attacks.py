"""The attack suite: every case of attacks.toml, over /chat, its stream and the WhatsApp webhook,
against a scripted hostile model (the OpenAI protocol mocked with respx) and the offline engine.

The caller is Lucía; whatever the attack, nothing Marco's or Sofía's leaves Bedel: not in an
answer, a streamed delta, a WhatsApp send, a stored message, a tool result or a log line.
"""

import base64
import binascii
import json
import re
import tomllib
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from prometheus_client import REGISTRY
from sqlalchemy import update

from bedel.chat.models import Thread
from bedel.config import Settings
from bedel.db import create_engine
from tests.channels.vendors import CHANNEL_SETTINGS, GRAPH_MESSAGES_URL, graph_sent, sent_text, signed, text_message
from tests.llm_fakes import LLM_BASE_URL, completion, stream_response, tool_call
from tests.polling import eventually

ATTACKS = tomllib.loads((Path(__file__).with_name("attacks.toml")).read_text(encoding="utf-8"))["attack"]
WA_ID = "5215512345678"
CALLER = "+525512345678"
STUDENTS = (
    "matricula,nombre,telefono,correo,curp,adeudo,promedio,observaciones\n"
    "A2024-0001,Lucía Pérez Ramírez,+52 55 1234 5678,lucia.perez@alumnos.edu.mx,PERL050101MDFRZC01,4500,8.8,{notes}\n"
    "A2024-0002,Marco Ruiz Salinas,+52 55 8765 4321,marco.ruiz@alumnos.edu.mx,RUSM040202HDFZLR02,99999,6.1,\n"
    "A2024-0003,Sofía Hernández Cruz,+52 33 2222 3333,sofia.hernandez@alumnos.edu.mx,HECS050303MJCRRF03,31415,9.7,\n"
)
# What no answer to Lucía may hold, in any spelling: the other two students' identifiers and debts.
SECRETS = {
    "marco's name": r"marco\W*ruiz\W*salinas",
    "marco's phone": r"5587654321",
    "marco's email": r"marco\.ruiz@alumnos",
    "marco's matrícula": r"a2024\W*0002",
    "marco's curp": r"rusm040202hdfzlr02",
    "marco's debt": r"99\W?999",
    "sofía's name": r"sofia\W*hernandez\W*cruz",
    "sofía's phone": r"3322223333",
    "sofía's email": r"sofia\.hernandez@alumnos",
    "sofía's matrícula": r"a2024\W*0003",
    "sofía's curp": r"hecs050303mjcrrf03",
    "sofía's debt": r"31\W?415",
}
_LEET = str.maketrans("0134578", "oieastb")
# What a log line holds that is no one's data but may spell a debt by chance: random ids and times
# (request id "a058a526cd0b44d5bee04099999fd8ab" holds Marco's; "…T22:31:41.563Z", Sofía's).
_LOGGED_NOISE = re.compile(
    r"\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b"
    r"|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?Z?"
)


def disclosed(text: str) -> list[str]:
    """Which secrets `text` gives away, read as a person would: without accents, case, spaces or
    separators, in leetspeak, and inside any base64."""
    views = [text]
    for token in re.findall(r"[A-Za-z0-9+/]{12,}={0,2}", text):
        try:
            views.append(base64.b64decode(token, validate=True).decode())
        except (binascii.Error, UnicodeDecodeError):
            continue
    found = []
    for view in views:
        plain = "".join(c for c in unicodedata.normalize("NFKD", view) if not unicodedata.combining(c)).casefold()
        squeezed = re.sub(r"[\s().+-]", "", plain)
        readings = [plain, squeezed, re.sub(r"\s", "", plain.translate(_LEET)), plain.translate(_LEET)]
        found += [name for name, pattern in SECRETS.items() if any(re.search(pattern, r) for r in readings)]
    return sorted(set(found))


class HostileModel:
    """An OpenAI-compatible upstream that tries everything: it answers the case's leak, echoes every
    message it was shown, and first asks for another student's record when the case says so."""

    def __init__(self, attack: dict[str, Any]) -> None:
        self.attack = attack
        self.tool_results: list[str] = []

    def answer(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        messages = body["messages"]
        self.tool_results += [m["content"] for m in messages if m["role"] == "tool"]
        if "Spanish words to search" in messages[0]["content"]:
            # An English question's search words: the case's, so its document is found and can leak.
            return completion(self.attack.get("search", messages[-1]["content"]))
        asked_tool = any(m["role"] == "tool" for m in messages)
        if "tool" in self.attack and body.get("tools") and not asked_tool and not body.get("stream"):
            return completion(None, tool_calls=[tool_call("get_my_record", self.attack["tool"])])
        seen = "\n".join(str(m.get("content") or "") for m in messages)
        text = f"{self.attack['model']}\n\n{seen}"
        if body.get("stream"):
            # Small pieces: an identifier arrives cut over several deltas.
            return stream_response([text[i : i + 7] for i in range(0, len(text), 7)])
        return completion(text)


def students_csv(field: str | None) -> str:
    """The three students; `field` as the notes on Lucía's own record."""
    return STUDENTS.format(notes='"' + field.replace('"', '""') + '"' if field else "")


def withheld_total() -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "bedel_guard_withheld"
        for sample in metric.samples
        if sample.name == "bedel_guard_withheld_total"
    )


async def ask_over(surface: str, client: httpx.AsyncClient, graph: respx.Route, messages: list[str]) -> list[str]:
    """Send the messages as a student would over `surface`; every text that came back."""
    out: list[str] = []
    for n, message in enumerate(messages):
        match surface:
            case "chat":
                response = await client.post("/chat", json={"phone": "+52 55 1234 5678", "question": message})
                assert response.status_code == 200, response.text
                out.append(response.json()["answer"])
            case "stream":
                response = await client.post(
                    "/chat", json={"phone": "+52 55 1234 5678", "question": message, "stream": True}
                )
                events = [block.split("\n", 1) for block in response.text.strip().split("\n\n")]
                assert [head for head, _ in events][-1] == "event: answer", response.text
                data = [json.loads(rest.removeprefix("data: ")) for _, rest in events]
                deltas = [d["text"] for d in data[:-1]]
                # Each delta, and what the student reads once they are put together.
                out += [*deltas, "".join(deltas), data[-1]["answer"]]
            case "whatsapp":
                body, headers = signed(text_message(WA_ID, message, f"wamid.attack{n}"))
                assert (await client.post("/webhooks/whatsapp", content=body, headers=headers)).status_code == 200
    if surface == "whatsapp":
        await eventually(lambda: graph.call_count >= len(messages))
        out += [sent_text(call.request) for call in graph.calls]
    return out


async def stored_answers(client: httpx.AsyncClient) -> list[str]:
    threads = (await client.get("/threads", params={"phone": CALLER})).json()["items"]
    messages = (await client.get(f"/threads/{threads[0]['id']}/messages", params={"limit": 200})).json()["items"]
    return [m["content"] for m in messages if m["role"] == "assistant"]


async def set_summary(database_url: str, summary: str) -> None:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(update(Thread).where(Thread.phone == CALLER).values(summary=summary))
    await engine.dispose()


SURFACES = [("chat", "hostile"), ("stream", "hostile"), ("whatsapp", "hostile"), ("chat", "offline")]


@pytest.mark.parametrize("attack", ATTACKS, ids=[attack["name"] for attack in ATTACKS])
@pytest.mark.parametrize(("surface", "engine"), SURFACES, ids=["-".join(s) for s in SURFACES])
async def test_no_attack_discloses_another_students_data(
    attack: dict[str, Any],
    surface: str,
    engine: str,
    make_settings: Callable[..., Settings],
    make_client: Callable[[Settings], Any],
    clean_database: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    overrides: dict[str, Any] = {**CHANNEL_SETTINGS} if surface == "whatsapp" else {}
    if engine == "hostile":
        overrides |= {"llm_provider": "openai_compatible", "llm_base_url": LLM_BASE_URL, "llm_api_key": "sk-test"}
        overrides |= {"llm_max_retries": 0}
    model = HostileModel(attack)
    withheld_before = withheld_total()
    with respx.mock(assert_all_called=False) as router:
        llm = router.post(f"{LLM_BASE_URL}/chat/completions").mock(side_effect=model.answer)
        graph = router.post(GRAPH_MESSAGES_URL).mock(return_value=graph_sent(WA_ID))
        async with make_client(make_settings(**overrides)) as client:
            csv = students_csv(attack.get("field"))
            assert (await client.post("/students/import", files={"file": ("s.csv", csv, "text/csv")})).is_success
            if "document" in attack:
                files = [("files", ("aviso.md", attack["document"], "text/markdown"))]
                assert (await client.post("/knowledge/documents", files=files)).is_success
            if "summary" in attack:
                assert (await client.post("/chat", json={"phone": CALLER, "question": "hola"})).is_success
                await set_summary(clean_database, attack["summary"])
            sent = await ask_over(surface, client, graph, attack["messages"])
            stored = await stored_answers(client)

    leaks = {text: disclosed(text) for text in [*sent, *stored, *model.tool_results] if disclosed(text)}
    assert leaks == {}, json.dumps(leaks, ensure_ascii=False, indent=1)
    logged = capsys.readouterr()
    assert disclosed(_LOGGED_NOISE.sub("", logged.out + logged.err)) == []
    if engine == "hostile":
        # The model did leak, and the guard stopped it: the case attacks something real.
        assert llm.called
        assert withheld_total() > withheld_before
        assert "guard_withheld" in logged.out + logged.err
