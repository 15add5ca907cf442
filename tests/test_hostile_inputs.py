"""Hostile files and payloads through the API: each gets a clear 4xx or a per-file error, and
what is refused stores nothing. (Signed webhook payloads with values of unexpected types:
tests/channels/test_hostile_payloads.py.)"""

from collections.abc import AsyncIterator

import httpx
import pytest

from bedel.spreadsheets import spreadsheet_cell
from tests.hostile_files import HOSTILE_FILES, SCRIPT

REFUSED = {"docx zip bomb": "unpacks to", "pdf with 3,000 pages": "page limit"}


@pytest.mark.parametrize("hostile", sorted(HOSTILE_FILES))
async def test_a_hostile_file_is_refused_by_name_or_read_as_plain_text(client: httpx.AsyncClient, hostile: str) -> None:
    name, build = HOSTILE_FILES[hostile]
    response = await client.post("/knowledge/documents", files=[("files", (name, build()))])
    assert response.status_code == 200, response.text
    [report] = response.json()["files"]
    stored = (await client.get("/knowledge/documents")).json()
    if hostile in REFUSED:
        assert report["status"] == "failed" and REFUSED[hostile] in report["error"]
        assert stored == []
        return
    assert report["status"] == "added", report
    detail = (await client.get(f"/knowledge/documents/{report['document']['id']}")).text
    assert SCRIPT not in detail and "<script" not in detail and "onerror" not in detail


async def test_a_100_mb_body_is_refused_before_it_is_read(client: httpx.AsyncClient) -> None:
    read = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal read
        for _ in range(100):
            read += 2**20
            yield b"x" * 2**20

    response = await client.post(
        "/chat",
        content=body(),
        headers={"content-type": "application/json", "content-length": str(100 * 2**20)},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert read < 100 * 2**20


@pytest.mark.parametrize("depth", [100, 10_000])
async def test_deeply_nested_json_is_a_clear_4xx(client: httpx.AsyncClient, depth: int) -> None:
    nested = '{"phone": "+525512345678", "question": ' + "[" * depth + "]" * depth + "}"
    response = await client.post("/chat", content=nested, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["code"]
    threads = await client.get("/threads")
    assert threads.json()["items"] == []


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://evil.example","Ver")', '\'=HYPERLINK("http://evil.example","Ver")'),
        ("+52 55 1234 5678", "'+52 55 1234 5678"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("Ana López", "Ana López"),
        (None, ""),
        (3, "3"),
    ],
)
def test_a_spreadsheet_cell_never_starts_a_formula(value: object, cell: str) -> None:
    assert spreadsheet_cell(value) == cell
