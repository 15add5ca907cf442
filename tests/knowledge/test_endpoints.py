"""The knowledge API through the real app, on SQLite and PostgreSQL, the way staff tools call it."""

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from bedel import api, migrate
from bedel.config import Settings
from bedel.db import create_engine
from tests.knowledge.documents import CALENDAR, FEES, KNOWLEDGE, LIBRARY, certificates_docx, pdf_with_text
from tests.polling import eventually

SURCHARGE = "Toda mensualidad pagada tarde genera un recargo del 10 % del importe vencido."
STAFF = {"Authorization": "Bearer staff-key"}
CLIENT = {"Authorization": "Bearer client-key"}

FileSpec = tuple[str, bytes | str, str]


async def upload(client: httpx.AsyncClient, *files: FileSpec, **kwargs: Any) -> httpx.Response:
    return await client.post("/knowledge/documents", files=[("files", spec) for spec in files], **kwargs)


async def search(client: httpx.AsyncClient, question: str, **kwargs: Any) -> list[dict[str, Any]]:
    response = await client.get("/knowledge/search", params={"q": question}, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def markdown(name: str, content: str) -> FileSpec:
    return (name, content.encode(), "text/markdown")


class TestUpload:
    async def test_a_batch_loads_every_good_file_and_reports_the_bad_one_by_name(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await upload(
            client,
            markdown("pagos.md", FEES),
            ("roto.pdf", b"%PDF-1.4 damaged", "application/pdf"),
            (
                "calendario.pdf",
                pdf_with_text(["Calendario", "El inicio de clases es el 11 de enero."]),
                "application/pdf",
            ),
            ("tramites.docx", certificates_docx(), "application/octet-stream"),
        )

        assert response.status_code == 200
        report = response.json()
        assert (report["added"], report["replaced"], report["unchanged"], report["failed"]) == (3, 0, 0, 1)
        statuses = {f["source"]: f["status"] for f in report["files"]}
        assert statuses == {
            "pagos.md": "added",
            "roto.pdf": "failed",
            "calendario.pdf": "added",
            "tramites.docx": "added",
        }
        failed = next(f for f in report["files"] if f["status"] == "failed")
        assert failed["error"].startswith("roto.pdf: ")
        assert "PDF cannot be read" in failed["error"]
        assert failed["document"] is None
        listed = (await client.get("/knowledge/documents")).json()
        assert sorted(d["source"] for d in listed) == ["calendario.pdf", "pagos.md", "tramites.docx"]

    async def test_the_same_content_again_is_unchanged(self, client: httpx.AsyncClient) -> None:
        first = (await upload(client, markdown("pagos.md", FEES))).json()

        again = (await upload(client, markdown("pagos.md", FEES + "\n\n"))).json()

        assert (again["added"], again["unchanged"]) == (0, 1)
        assert again["files"][0]["document"]["id"] == first["files"][0]["document"]["id"]
        assert len((await client.get("/knowledge/documents")).json()) == 1

    async def test_the_same_name_with_new_content_replaces_the_old_text(self, client: httpx.AsyncClient) -> None:
        await upload(client, markdown("pagos.md", FEES))
        assert await search(client, "recargo por pago tarde")

        response = await upload(client, markdown("pagos.md", "# Colegiaturas\n\nLa inscripción cuesta $3,900.\n"))

        assert response.json()["replaced"] == 1
        assert await search(client, "recargo por pago tarde") == []
        hits = await search(client, "¿cuánto cuesta la inscripción?")
        assert [hit["text"] for hit in hits] == ["La inscripción cuesta $3,900."]
        listed = (await client.get("/knowledge/documents")).json()
        assert [d["source"] for d in listed] == ["pagos.md"]

    async def test_a_file_changed_to_the_text_of_another_document_still_drops_its_old_text(
        self, client: httpx.AsyncClient
    ) -> None:
        await upload(client, markdown("pagos.md", FEES), markdown("calendario.md", CALENDAR))

        await upload(client, markdown("pagos.md", CALENDAR))

        assert await search(client, "recargo por pago tarde") == []

    async def test_an_unsupported_file_is_reported_with_the_accepted_types(self, client: httpx.AsyncClient) -> None:
        report = (await upload(client, ("notas.xlsx", b"PK\x03\x04", "application/octet-stream"))).json()

        assert report["failed"] == 1
        assert report["files"][0]["error"].startswith("notas.xlsx: unsupported file type .xlsx")

    async def test_a_batch_over_the_upload_limit_is_a_413_and_loads_nothing(
        self, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(api.UPLOAD_BODY_BYTES, "/knowledge/documents", 4096)

        response = await upload(client, markdown("pagos.md", FEES), markdown("grande.md", "# Grande\n\n" + "x " * 4096))

        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        assert (await client.get("/knowledge/documents")).json() == []


class TestDocuments:
    async def test_list_shows_each_document_with_its_counts(self, client: httpx.AsyncClient) -> None:
        await upload(client, markdown("pagos.md", FEES), markdown("calendario.md", CALENDAR))

        listed = (await client.get("/knowledge/documents")).json()

        assert [(d["title"], d["source"], d["content_type"], d["chunk_count"]) for d in listed] == [
            ("Calendario académico 2027", "calendario.md", "text/markdown", 1),
            ("Colegiaturas y pagos", "pagos.md", "text/markdown", 2),
        ]
        assert listed[1]["size_bytes"] == len(FEES.encode())

    async def test_get_returns_the_document_with_its_chunks(self, client: httpx.AsyncClient) -> None:
        document = (await upload(client, markdown("pagos.md", FEES))).json()["files"][0]["document"]

        response = await client.get(f"/knowledge/documents/{document['id']}")

        assert response.status_code == 200
        detail = response.json()
        assert detail["title"] == "Colegiaturas y pagos"
        assert [(c["position"], c["heading"]) for c in detail["chunks"]] == [
            (0, "Colegiaturas y pagos > Fechas de vencimiento"),
            (1, "Colegiaturas y pagos > Pago extemporáneo"),
        ]
        assert detail["chunks"][1]["text"].startswith(SURCHARGE)
        assert detail["chunks"][1]["token_count"] > 0

    async def test_delete_removes_the_document_from_search_and_chat(self, client: httpx.AsyncClient) -> None:
        report = (await upload(client, *(markdown(name, content) for name, content in KNOWLEDGE.items()))).json()
        document = next(f["document"] for f in report["files"] if f["source"] == "colegiaturas.md")
        question = {"phone": "+5215512345678", "question": "¿cuánto es el recargo si pago tarde?"}
        assert (await client.post("/chat", json=question)).json()["sources"] != []

        deleted = await client.delete(f"/knowledge/documents/{document['id']}")

        assert deleted.status_code == 204
        assert (await client.get(f"/knowledge/documents/{document['id']}")).status_code == 404
        assert (await client.delete(f"/knowledge/documents/{document['id']}")).status_code == 404
        assert all(hit["document_id"] != document["id"] for hit in await search(client, "recargo por pago tarde"))
        answer = (await client.post("/chat", json=question)).json()
        assert answer["sources"] == []
        assert "10 %" not in answer["answer"]

    async def test_an_unknown_id_is_a_404(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/knowledge/documents/00000000-0000-0000-0000-000000000000")

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


class TestSearch:
    async def test_search_returns_chunks_with_scores_best_first(self, client: httpx.AsyncClient) -> None:
        await upload(client, markdown("pagos.md", FEES), markdown("calendario.md", CALENDAR), markdown("b.md", LIBRARY))

        hits = await search(client, "¿cuándo empiezan las clases?")

        assert hits[0]["title"] == "Calendario académico 2027"
        assert hits[0]["text"].startswith("El inicio de clases es el 11 de enero de 2027.")
        assert hits[0]["score"] > 0
        assert hits[0]["relevance"] > 0.5
        assert set(hits[0]) == {"chunk_id", "document_id", "title", "heading", "text", "score", "relevance"}
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)

    async def test_limit_caps_the_results(self, client: httpx.AsyncClient) -> None:
        await upload(client, markdown("pagos.md", FEES), markdown("calendario.md", CALENDAR), markdown("b.md", LIBRARY))

        response = await client.get("/knowledge/search", params={"q": "recargo inicio biblioteca", "limit": 2})

        assert response.status_code == 200
        hits = response.json()

        assert len(hits) == 2

    async def test_an_empty_question_is_a_422(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/knowledge/search", params={"q": ""})).status_code == 422


class TestStaffOnly:
    async def test_a_client_key_gets_403_on_every_knowledge_route(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]
    ) -> None:
        settings = make_settings(api_keys="client-key", staff_api_keys="staff-key")
        async with make_client(settings) as client:
            created = (await upload(client, markdown("pagos.md", FEES), headers=STAFF)).json()
            document_id = created["files"][0]["document"]["id"]
            calls = [
                client.post("/knowledge/documents", files=[("files", markdown("x.md", LIBRARY))], headers=CLIENT),
                client.get("/knowledge/documents", headers=CLIENT),
                client.get(f"/knowledge/documents/{document_id}", headers=CLIENT),
                client.delete(f"/knowledge/documents/{document_id}", headers=CLIENT),
                client.get("/knowledge/search", params={"q": "recargo"}, headers=CLIENT),
            ]
            codes = [(await call).status_code for call in calls]
            still_there = (await client.get("/knowledge/documents", headers=STAFF)).json()

        assert codes == [403] * 5
        assert [d["source"] for d in still_there] == ["pagos.md"]


class TestReplicas:
    async def test_a_replica_finds_a_document_added_through_another_after_its_refresh(
        self, make_client: Callable[[Settings], Any], make_settings: Callable[..., Settings]
    ) -> None:
        settings = make_settings(knowledge_refresh_s=0.05)
        async with make_client(settings) as first, make_client(settings) as second:
            assert await search(second, "recargo por pago tarde") == []

            await upload(first, markdown("pagos.md", FEES))
            await eventually(lambda: search(second, "recargo por pago tarde"))
            found = await search(second, "recargo por pago tarde")

        assert [hit["title"] for hit in found][:1] == ["Colegiaturas y pagos"]

    async def test_a_restarted_app_loads_the_saved_index_instead_of_reindexing(
        self, make_client: Callable[[Settings], Any], settings: Settings
    ) -> None:
        async with make_client(settings) as client:
            await upload(client, markdown("pagos.md", FEES))
        assert any(settings.knowledge_index_dir.iterdir())
        # The chunks vanish from the database while the revision stays: only the saved index can still answer.
        engine = create_engine(settings.database_url)
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM document_chunks"))
        await engine.dispose()

        async with make_client(settings) as restarted:
            hits = await search(restarted, "recargo por pago tarde")

        assert hits[0]["text"].startswith(SURCHARGE)


class TestStartup:
    async def test_the_app_starts_and_reports_not_ready_while_migrations_are_pending(
        self, make_client: Callable[[Settings], Any], tmp_path: Path
    ) -> None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        await asyncio.to_thread(migrate.upgrade, url, "0001")
        settings = Settings(_env_file=None, database_url=url, knowledge_index_dir=tmp_path / "index")

        async with make_client(settings) as client:
            ready = await client.get("/readyz")
            alive = await client.get("/healthz")

        assert alive.status_code == 200
        assert ready.status_code == 503
        assert "bedel db upgrade" in ready.json()["reason"]


class TestBatchNames:
    async def test_a_name_given_twice_in_one_upload_is_refused_the_second_time(self, client: httpx.AsyncClient) -> None:
        response = await upload(client, markdown("pagos.md", f"# Pagos\n\n{SURCHARGE}"), markdown("pagos.md", "# Otro"))

        assert [(f["status"], f["error"]) for f in response.json()["files"]] == [
            ("added", None),
            ("failed", "pagos.md: given twice"),
        ]

    async def test_a_file_with_only_headings_is_refused(self, client: httpx.AsyncClient) -> None:
        response = await upload(client, markdown("vacio.md", "# Titulo\n\n## Seccion\n"))

        assert response.json()["files"][0]["error"] == "vacio.md: no text besides headings"
