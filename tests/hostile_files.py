"""Hostile files, built here rather than committed: a zip bomb, a DOCX with a huge styles part,
PDFs with thousands of pages or a broken cross-reference, HTML with scripts. Shared by
tests/test_hostile_inputs.py and bench/hostile_files.py."""

import io
import re
import zipfile
from collections.abc import Callable

import docx
import pypdf

from bedel.knowledge.parsing import MAX_DOCX_UNPACKED_BYTES, MAX_PDF_PAGES
from tests.knowledge.documents import pdf_with_text

SCRIPT = "alert('robado')"


def docx_zip_bomb() -> bytes:
    """A few hundred KiB that unpack past the limit (zeros compress about 1000 to 1)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * (MAX_DOCX_UNPACKED_BYTES + 1))
    return out.getvalue()


def docx_with_huge_styles(styles: int = 20_000, paragraphs: int = 5_000) -> bytes:
    """Tens of thousands of styles, each paragraph using one near the end: a style lookup per
    paragraph that walks the whole styles part would take minutes."""
    document = docx.Document()
    styles_part = document.styles.element
    for number in range(styles):
        styles_part.append(
            styles_part.makeelement(
                "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}style",
                {
                    "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}type": "paragraph",
                    "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}styleId": f"Estilo{number}",
                },
            )
        )
    for number in range(paragraphs):
        document.add_paragraph(f"Párrafo {number} del reglamento.")._p.style = f"Estilo{styles - 1 - number % 10}"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pdf_with_thousands_of_pages() -> bytes:
    writer = pypdf.PdfWriter()
    for _ in range(MAX_PDF_PAGES * 3):
        writer.add_blank_page(width=612, height=792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_with_broken_xref() -> bytes:
    return re.sub(rb"startxref\s+\d+", b"startxref\n999999", pdf_with_text(["Calendario escolar 2027"]))


def html_with_scripts() -> bytes:
    return (
        "<html><head><script>" + SCRIPT + "</script></head><body><h1>Becas</h1>"
        '<p onclick="' + SCRIPT + '">La beca cubre el 50 %.</p><img src=x onerror="' + SCRIPT + '">'
        "<script>" + SCRIPT + "</script><noscript><iframe src='javascript:" + SCRIPT + "'></iframe></noscript>"
        "</body></html>"
    ).encode()


# name → (file name, how to build it)
HOSTILE_FILES: dict[str, tuple[str, Callable[[], bytes]]] = {
    "docx zip bomb": ("bomba.docx", docx_zip_bomb),
    "docx with 20,000 styles": ("estilos.docx", docx_with_huge_styles),
    "pdf with 3,000 pages": ("anuario.pdf", pdf_with_thousands_of_pages),
    "pdf with a broken xref": ("calendario.pdf", pdf_with_broken_xref),
    "html with scripts": ("becas.html", html_with_scripts),
}
