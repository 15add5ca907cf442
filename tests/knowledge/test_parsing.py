"""Files of every accepted format become Markdown with a title; unreadable ones are refused by name of the problem."""

import io
import re
import zipfile

import pypdf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bedel.knowledge.parsing import (
    CONTENT_TYPES,
    MAX_DOCX_UNPACKED_BYTES,
    MAX_PDF_PAGES,
    ParsedDocument,
    UnreadableDocument,
    parse_document,
)
from tests.knowledge.documents import certificates_docx, pdf_with_text

PAGE = b"""<html><head><title>Portal UTB</title><style>.menu { color: red }</style>
<script>var rastreo = "analitica";</script></head>
<body><nav><a href="/">Menu principal</a></nav>
<h1>Servicios escolares</h1>
<h2>Horario de ventanilla</h2>
<ul><li>Lunes a viernes de 9:00 a 18:00</li><li>Sabados de 9:00 a 13:00</li></ul>
<table><tr><th>Tramite</th><th>Costo</th></tr><tr><td>Constancia</td><td>$180</td></tr></table>
</body></html>"""


class TestTitle:
    def test_markdown_title_is_its_first_heading(self) -> None:
        parsed = parse_document("pagos.md", "Introducción\n\n# Colegiaturas 2027\n\n## Recargos\n\nTexto.".encode())

        assert parsed.title == "Colegiaturas 2027"
        assert parsed.content_type == "text/markdown"

    def test_text_title_comes_from_the_file_name(self) -> None:
        parsed = parse_document("reglamento_de-evaluacion.txt", "La calificación mínima es 7.".encode())

        assert parsed.title == "Reglamento de evaluacion"
        assert parsed.markdown == "La calificación mínima es 7."


class TestHtml:
    def test_keeps_headings_lists_and_tables(self) -> None:
        markdown = parse_document("servicios.html", PAGE).markdown

        assert "# Servicios escolares" in markdown
        assert "## Horario de ventanilla" in markdown
        assert re.search(r"^[*-] Lunes a viernes de 9:00 a 18:00$", markdown, re.MULTILINE)
        assert "| Tramite | Costo |" in markdown
        assert "| Constancia | $180 |" in markdown

    def test_drops_head_title_scripts_styles_and_navigation(self) -> None:
        parsed = parse_document("servicios.html", PAGE)

        assert parsed.title == "Servicios escolares"
        for noise in ("Portal UTB", "color: red", "rastreo", "analitica", "Menu principal"):
            assert noise not in parsed.markdown


class TestPdf:
    def test_text_layer_is_extracted(self) -> None:
        data = pdf_with_text(["Reglamento de pagos", "El recargo por pago tardio es de 10 por ciento."])

        parsed = parse_document("reglamento-pagos.pdf", data)

        assert "El recargo por pago tardio es de 10 por ciento." in parsed.markdown
        assert parsed.title == "Reglamento pagos"
        assert parsed.content_type == "application/pdf"

    def test_encrypted_pdf_is_refused(self) -> None:
        writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf_with_text(["Texto secreto"]))))
        writer.encrypt("contraseña")
        encrypted = io.BytesIO()
        writer.write(encrypted)

        with pytest.raises(UnreadableDocument, match="encrypted"):
            parse_document("protegido.pdf", encrypted.getvalue())

    def test_pdf_without_text_says_it_needs_ocr(self) -> None:
        with pytest.raises(UnreadableDocument, match="OCR"):
            parse_document("escaneo.pdf", pdf_with_text([]))


class TestDocx:
    def test_headings_list_and_table_become_markdown_in_order(self) -> None:
        parsed = parse_document("tramites.docx", certificates_docx())

        assert parsed.title == "Trámites escolares"
        markdown = parsed.markdown
        order = [
            "# Trámites escolares",
            "## Constancias",
            "Para pedir una constancia necesitas:",
            "- Tu matrícula",
            "- El comprobante de pago",
            "| Documento | Costo |",
            "| Constancia simple | $180 |",
            "## Certificados",
            "El certificado total tarda veinte días hábiles.",
        ]
        positions = [markdown.index(line) for line in order]
        assert positions == sorted(positions)

    def test_table_is_a_markdown_table_with_a_delimiter_row(self) -> None:
        markdown = parse_document("tramites.docx", certificates_docx()).markdown

        assert re.search(r"^\| Documento \| Costo \|\n\|\s*:?-+:?\s*\|\s*:?-+:?\s*\|$", markdown, re.MULTILINE)


class TestUnreadable:
    @pytest.mark.parametrize("name", ["vacio.md", "vacio.txt", "vacio.pdf", "vacio.docx"])
    def test_empty_file_is_refused_as_empty(self, name: str) -> None:
        with pytest.raises(UnreadableDocument, match="empty"):
            parse_document(name, b" \n\t ")

    @pytest.mark.parametrize(
        ("name", "data", "problem"),
        [
            ("roto.pdf", b"%PDF-1.4\nthis is not a pdf body", "PDF cannot be read"),
            ("roto.docx", b"PK\x03\x04 not a zip archive", "DOCX cannot be read"),
        ],
    )
    def test_damaged_file_is_refused_naming_its_format(self, name: str, data: bytes, problem: str) -> None:
        with pytest.raises(UnreadableDocument, match=problem):
            parse_document(name, data)

    @pytest.mark.parametrize("name", ["notas.xlsx", "foto.jpg", "sin-extension"])
    def test_unsupported_type_is_refused_listing_the_accepted_ones(self, name: str) -> None:
        with pytest.raises(UnreadableDocument, match=r"unsupported file type .*accepted: .docx.*\.md.*\.pdf"):
            parse_document(name, b"contenido")


class TestOddFiles:
    def test_old_mac_line_endings_keep_their_lines(self) -> None:
        parsed = parse_document("aviso.md", b"# Aviso\r\rEl recargo es del 10 %.\r- uno\r- dos\r")

        assert parsed.title == "Aviso"
        assert "\r" not in parsed.markdown and "El recargo es del 10 %." in parsed.markdown.split("\n")

    def test_a_binary_file_named_as_text_is_refused(self) -> None:
        with pytest.raises(UnreadableDocument, match="not a text file"):
            parse_document("foto.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8)

    def test_a_docx_that_unpacks_past_the_limit_is_refused_before_parsing(self) -> None:
        bomb = io.BytesIO()
        with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("word/document.xml", b"\0" * (MAX_DOCX_UNPACKED_BYTES + 1))

        with pytest.raises(UnreadableDocument, match="unpacks to"):
            parse_document("bomba.docx", bomb.getvalue())

    def test_a_pdf_with_thousands_of_pages_is_refused_before_reading_them(self) -> None:
        writer = pypdf.PdfWriter()
        for _ in range(MAX_PDF_PAGES + 1):
            writer.add_blank_page(width=612, height=792)
        pages = io.BytesIO()
        writer.write(pages)

        with pytest.raises(UnreadableDocument, match=f"{MAX_PDF_PAGES + 1} pages, over the {MAX_PDF_PAGES}-page limit"):
            parse_document("anuario.pdf", pages.getvalue())

    def test_a_pdf_whose_cross_reference_points_nowhere_is_still_read(self) -> None:
        whole = pdf_with_text(["Calendario escolar 2027"])
        broken = re.sub(rb"startxref\s+\d+", b"startxref\n999999", whole)
        assert broken != whole

        assert "Calendario escolar 2027" in parse_document("calendario.pdf", broken).markdown

    @settings(max_examples=60, deadline=None)
    @given(name=st.sampled_from(sorted(CONTENT_TYPES)), data=st.binary(max_size=2048))
    def test_any_bytes_under_any_accepted_name_give_text_or_a_named_refusal(self, name: str, data: bytes) -> None:
        try:
            parsed = parse_document(f"archivo{name}", data)
        except UnreadableDocument as refused:
            assert str(refused)
        else:
            assert isinstance(parsed, ParsedDocument) and parsed.markdown and parsed.title

    def test_a_title_from_the_file_name_keeps_its_capitals(self) -> None:
        assert parse_document("reglamento_UNAM-2027.txt", b"Texto.").title == "Reglamento UNAM 2027"
