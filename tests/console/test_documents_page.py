"""The documents page (admins): upload several files at once, see their passages, replace, delete,
and try a question, on SQLite and PostgreSQL through the real app."""

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bedel import api
from bedel.config import Settings
from bedel.db import create_engine
from bedel.knowledge.models import Document, DocumentChunk
from tests.console.accounts import ADMIN, page_token, sign_in
from tests.knowledge.documents import CALENDAR, FEES, LIBRARY, pdf_with_text

PAGE = "/console/documents"
SURCHARGE = "recargo del 10 %"

FileSpec = tuple[str, bytes, str]


def markdown(name: str, content: str) -> FileSpec:
    return (name, content.encode(), "text/markdown")


async def upload(admin: httpx.AsyncClient, *files: FileSpec) -> httpx.Response:
    token = await page_token(admin, PAGE)
    return await admin.post(PAGE, data={"csrf_token": token}, files=[("files", spec) for spec in files])


def document_id(page: httpx.Response, title: str) -> str:
    found = re.search(rf'href="/console/documents/([0-9a-f-]{{36}})">{re.escape(title)}</a>', page.text)
    assert found is not None, page.text
    return found.group(1)


async def stored(database_url: str) -> dict[str, Any]:
    """The documents as stored (source: chunk count) and the chunks in all."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            documents = dict((await connection.execute(select(Document.source, Document.chunk_count))).all())
            chunks = await connection.scalar(select(func.count()).select_from(DocumentChunk))
    finally:
        await engine.dispose()
    return {"documents": documents, "chunks": chunks}


class TestUpload:
    async def test_several_files_at_once_each_reported_and_listed_with_chunk_counts(
        self, as_admin: httpx.AsyncClient, clean_database: str
    ) -> None:
        response = await upload(as_admin, markdown("pagos.md", FEES), markdown("calendario.md", CALENDAR))

        assert response.status_code == 200
        assert response.headers["HX-Push-Url"] == PAGE
        assert "<strong>pagos.md</strong>: cargado" in response.text
        assert "<strong>calendario.md</strong>: cargado" in response.text
        assert "Documentos cargados (2)" in response.text
        counts = (await stored(clean_database))["documents"]
        assert set(counts) == {"pagos.md", "calendario.md"}
        page = await as_admin.get(PAGE)
        row = re.search(r"Colegiaturas y pagos</a></th>\s*<td[^>]*>pagos.md</td>\s*<td[^>]*>(\d+)</td>", page.text)
        assert row is not None and int(row.group(1)) == counts["pagos.md"]
        assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT[^"]+">\d{4}-\d\d-\d\d \d\d:\d\d UTC</time>', page.text)

    async def test_a_bad_file_is_refused_by_name_and_the_others_still_load(
        self, as_admin: httpx.AsyncClient, clean_database: str
    ) -> None:
        response = await upload(
            as_admin,
            markdown("pagos.md", FEES),
            ("roto.pdf", b"%PDF-1.4 damaged", "application/pdf"),
            ("notas.xlsx", b"PK\x03\x04", "application/octet-stream"),
        )

        assert response.status_code == 200
        assert "<strong>pagos.md</strong>: cargado" in response.text
        refused = r"<strong>roto.pdf</strong>: no se cargó.*roto.pdf: the PDF cannot be read"
        assert re.search(refused, response.text, re.S)
        assert "notas.xlsx: unsupported file type .xlsx" in response.text
        assert (await stored(clean_database))["documents"].keys() == {"pagos.md"}

    async def test_only_bad_files_is_a_422_that_stores_nothing(
        self, as_admin: httpx.AsyncClient, clean_database: str
    ) -> None:
        response = await upload(as_admin, markdown("vacio.md", "# Solo un título\n"))

        assert response.status_code == 422
        assert "no text besides headings" in response.text
        assert await stored(clean_database) == {"documents": {}, "chunks": 0}

    async def test_a_name_already_loaded_replaces_its_text(self, as_admin: httpx.AsyncClient) -> None:
        await upload(as_admin, markdown("pagos.md", FEES))

        response = await upload(as_admin, markdown("pagos.md", FEES.replace("10 %", "12 %")))

        assert "<strong>pagos.md</strong>: reemplazó la versión anterior" in response.text
        found = await as_admin.get(PAGE, params={"q": "recargo por pago tarde"})
        assert "recargo del 12 %" in found.text
        assert SURCHARGE not in found.text

    async def test_no_file_chosen_is_a_422(self, as_admin: httpx.AsyncClient, clean_database: str) -> None:
        token = await page_token(as_admin, PAGE)
        response = await as_admin.post(
            PAGE, data={"csrf_token": token}, files=[("files", ("", b"", "application/octet-stream"))]
        )

        assert response.status_code == 422
        assert "La solicitud no es válida." in response.text
        assert (await stored(clean_database))["documents"] == {}

    async def test_a_batch_over_the_apis_upload_limit_is_a_413_and_stores_nothing(
        self, as_admin: httpx.AsyncClient, clean_database: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(api.UPLOAD_BODY_BYTES, PAGE, 4096)

        big = markdown("grande.md", "# Grande\n\n" + "x " * 4096)

        response = await upload(as_admin, markdown("pagos.md", FEES), big)

        assert response.status_code == 413
        assert (await stored(clean_database))["documents"] == {}

    def test_the_console_takes_the_apis_upload_limit(self) -> None:
        limit = api.UPLOAD_BODY_BYTES["/knowledge/documents"]
        assert api.UPLOAD_BODY_BYTES[PAGE] == api.UPLOAD_BODY_BYTES[f"{PAGE}/replace"] == limit


class TestTestQuestion:
    async def test_finds_the_passage_with_its_score_right_after_the_upload(self, as_admin: httpx.AsyncClient) -> None:
        await upload(as_admin, markdown("pagos.md", FEES), markdown("biblioteca.md", LIBRARY))

        response = await as_admin.get(PAGE, params={"q": "¿Cuánto es el recargo si pago tarde?"})

        assert response.status_code == 200
        first = response.text.split('<ol class="passages"', 1)[1].split("</li>", 1)[0]
        assert "Colegiaturas y pagos" in first and "Pago extemporáneo" in first
        assert SURCHARGE in first
        assert re.search(r"Puntaje: <strong>\d+\.\d\d</strong>", first)
        assert re.search(r"Relevancia: <strong>\d+ %</strong>", first)
        assert "Bedel lo usaría" in first
        assert 'value="¿Cuánto es el recargo si pago tarde?"' in response.text
        assert "todavía está incorporando" not in response.text

    async def test_a_question_no_document_answers_says_so(self, as_admin: httpx.AsyncClient) -> None:
        await upload(as_admin, markdown("pagos.md", FEES))

        response = await as_admin.get(PAGE, params={"q": "zxqw"})

        assert "Pasajes encontrados: 0" in response.text
        assert "Quizá falta un documento" in response.text

    async def test_says_so_while_the_index_has_not_taken_in_the_latest_change(
        self, make_client: Callable[..., Any], make_settings: Callable[..., Settings], tmp_path: Path, accounts: None
    ) -> None:
        # The index cannot be saved here, so it stays at the revision before the upload.
        unwritable = tmp_path / "not-a-folder"
        unwritable.write_text("")
        async with make_client(make_settings(knowledge_index_dir=unwritable)) as admin:
            await sign_in(admin, *ADMIN)
            await upload(admin, markdown("pagos.md", FEES))

            response = await admin.get(PAGE, params={"q": "recargo por pago tarde"})

        assert "Bedel todavía está incorporando los últimos cambios" in response.text


class TestDocument:
    async def test_shows_its_passages_in_order(self, as_admin: httpx.AsyncClient) -> None:
        listed = await upload(as_admin, markdown("pagos.md", FEES))

        page = await as_admin.get(f"{PAGE}/{document_id(listed, 'Colegiaturas y pagos')}")

        assert page.status_code == 200
        assert "<h1>Colegiaturas y pagos</h1>" in page.text
        assert page.text.index("Fechas de vencimiento") < page.text.index("Pago extemporáneo")
        assert SURCHARGE in page.text

    async def test_an_unknown_document_is_a_404_page(self, as_admin: httpx.AsyncClient) -> None:
        response = await as_admin.get(f"{PAGE}/{uuid.UUID(int=0)}")

        assert response.status_code == 404
        assert "No encontramos esta página." in response.text


class TestReplace:
    async def test_a_new_file_takes_the_documents_place_even_under_another_name(
        self, as_admin: httpx.AsyncClient, clean_database: str
    ) -> None:
        listed = await upload(as_admin, markdown("pagos.md", FEES), markdown("biblioteca.md", LIBRARY))
        old = document_id(listed, "Colegiaturas y pagos")
        token = await page_token(as_admin, f"{PAGE}/{old}")
        new_pdf = pdf_with_text(["Colegiaturas 2027", "El recargo por pago tarde es del 15 por ciento."])

        response = await as_admin.post(
            f"{PAGE}/replace",
            data={"csrf_token": token, "document_id": old},
            files={"file": ("pagos-2027.pdf", new_pdf, "application/pdf")},
        )

        assert response.status_code == 303
        page = await as_admin.get(response.headers["location"])
        assert "Se reemplazó el documento con el archivo nuevo." in page.text
        assert "15 por ciento" in page.text
        assert (await stored(clean_database))["documents"].keys() == {"pagos-2027.pdf", "biblioteca.md"}
        assert (await as_admin.get(f"{PAGE}/{old}")).status_code == 404

    async def test_an_unreadable_file_is_refused_and_the_document_stays(
        self, as_admin: httpx.AsyncClient, clean_database: str
    ) -> None:
        listed = await upload(as_admin, markdown("pagos.md", FEES))
        old = document_id(listed, "Colegiaturas y pagos")
        before = await stored(clean_database)
        token = await page_token(as_admin, f"{PAGE}/{old}")

        response = await as_admin.post(
            f"{PAGE}/replace",
            data={"csrf_token": token, "document_id": old},
            files={"file": ("roto.pdf", b"%PDF-1.4 damaged", "application/pdf")},
        )

        assert response.status_code == 422
        assert "no se cargó; no se guardó nada de este archivo" in response.text
        assert "the PDF cannot be read" in response.text
        assert SURCHARGE in response.text
        assert await stored(clean_database) == before


class TestDelete:
    async def test_the_document_goes_from_the_list_and_the_search(
        self, as_admin: httpx.AsyncClient, clean_database: str
    ) -> None:
        listed = await upload(as_admin, markdown("pagos.md", FEES), markdown("biblioteca.md", LIBRARY))
        token = await page_token(as_admin, PAGE)

        response = await as_admin.post(
            f"{PAGE}/{document_id(listed, 'Colegiaturas y pagos')}/delete", data={"csrf_token": token}
        )

        assert response.status_code == 303
        page = await as_admin.get(response.headers["location"])
        assert "Se eliminó el documento." in page.text
        assert "Documentos cargados (1)" in page.text
        assert (await stored(clean_database))["documents"].keys() == {"biblioteca.md"}
        assert SURCHARGE not in (await as_admin.get(PAGE, params={"q": "recargo pago tarde"})).text

    async def test_a_document_already_gone_is_a_404_that_changes_nothing(
        self, as_admin: httpx.AsyncClient, clean_database: str
    ) -> None:
        await upload(as_admin, markdown("pagos.md", FEES))
        before = await stored(clean_database)
        token = await page_token(as_admin, PAGE)

        response = await as_admin.post(f"{PAGE}/{uuid.UUID(int=0)}/delete", data={"csrf_token": token})

        assert response.status_code == 404
        assert "Ese documento ya no existe." in response.text
        assert await stored(clean_database) == before
