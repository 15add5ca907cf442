"""Turn an uploaded file into Markdown text: one shape for chunking, whatever the format.

Markdown and text pass through; HTML goes through markdownify; PDF through pypdf
(text layer only, so a scanned PDF has no text); DOCX through python-docx, with
heading and list styles kept as Markdown (docs/decisions/0006).
"""

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import PurePath

import docx
import pypdf
from bs4 import BeautifulSoup
from docx.table import Table
from markdownify import MarkdownConverter

CONTENT_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
_FIRST_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_LINE_ENDS = re.compile(r"\r\n?")
# A DOCX is a zip: its unpacked size bounds the work (and memory) of parsing it.
MAX_DOCX_UNPACKED_BYTES = 64 * 2**20
# Far past any calendar or regulation, and each page costs text extraction: a file with more is
# refused before any page is read, in bounded time.
MAX_PDF_PAGES = 1000
_DOCX_HEADING = re.compile(r"^(?:heading|título|titulo)\s*(\d)$", re.IGNORECASE)


class UnreadableDocument(Exception):
    """The file cannot give text: empty, damaged, encrypted or of an unsupported type."""


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    markdown: str
    content_type: str


def supported(name: str) -> bool:
    return PurePath(name).suffix.lower() in CONTENT_TYPES


def parse_document(name: str, data: bytes) -> ParsedDocument:
    suffix = PurePath(name).suffix.lower()
    if suffix not in CONTENT_TYPES:
        accepted = ", ".join(sorted(CONTENT_TYPES))
        raise UnreadableDocument(f"unsupported file type {suffix or '(none)'}; accepted: {accepted}")
    if not data.strip():
        raise UnreadableDocument("the file is empty")
    match suffix:
        case ".pdf":
            markdown = _pdf_text(data)
        case ".docx":
            markdown = _docx_markdown(data)
        case ".html" | ".htm":
            markdown = _html_markdown(_decode(data))
        case _:
            markdown = _decode(data)
    markdown = _LINE_ENDS.sub("\n", markdown).replace("\x00", "").strip()
    if not markdown:
        raise UnreadableDocument("no text found in the file (a scanned PDF needs OCR first)")
    heading = _FIRST_HEADING.search(markdown)
    title = heading.group(1).strip() if heading else _title_from_name(name)
    return ParsedDocument(title=title[:300], markdown=markdown, content_type=CONTENT_TYPES[suffix])


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise UnreadableDocument("this is not a text file (it holds binary data)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Spanish documents saved by older Windows tools are usually Windows-1252.
        text = data.decode("cp1252", errors="replace")
    if text.count("\ufffd") > len(text) / 100:
        raise UnreadableDocument("this is not a text file in UTF-8 or Windows-1252")
    return text


def _html_markdown(html: str) -> str:
    """The page's content as Markdown: head, site header and footer, scripts, styles and navigation are not."""
    soup = BeautifulSoup(html, "html.parser")
    for element in soup(["head", "header", "footer", "script", "style", "nav", "noscript", "template"]):
        element.decompose()
    return str(MarkdownConverter(heading_style="ATX", strip=["img"]).convert_soup(soup))


def _pdf_text(data: bytes) -> str:
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableDocument("the PDF is encrypted; upload a copy without a password")
        if len(reader.pages) > MAX_PDF_PAGES:
            raise UnreadableDocument(f"the PDF has {len(reader.pages)} pages, over the {MAX_PDF_PAGES}-page limit")
        return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)
    except UnreadableDocument:
        raise
    except Exception as exc:  # pypdf raises its own, and plain Python, errors on damaged files
        raise UnreadableDocument(f"the PDF cannot be read ({type(exc).__name__})") from None


def _docx_markdown(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(item.file_size for item in archive.infolist())
        if unpacked > MAX_DOCX_UNPACKED_BYTES:
            raise UnreadableDocument(f"the DOCX unpacks to {unpacked // 2**20} MiB, over the 64 MiB limit")
        document = docx.Document(io.BytesIO(data))
    except UnreadableDocument:
        raise
    except Exception as exc:  # python-docx raises zipfile, lxml and its own errors for damaged files
        raise UnreadableDocument(f"the DOCX cannot be read ({type(exc).__name__})") from None
    # Each style's name, read once: looking a paragraph's style up walks the whole styles part,
    # and a hostile file with tens of thousands of styles and paragraphs would take minutes.
    style_names = {style.style_id: style.name or "" for style in document.styles}
    lines: list[str] = []
    # Paragraphs and tables in document order, so a table stays under its heading.
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            rows = ["| " + " | ".join(cell.text.strip() for cell in row.cells) + " |" for row in block.rows]
            if rows:
                # The delimiter row makes it a Markdown table, so the chunker keeps its header with its rows.
                lines += [rows[0], "|" + " --- |" * len(block.rows[0].cells), *rows[1:], ""]
            continue
        text = block.text.strip()
        if not text:
            continue
        style = style_names.get(block._p.style or "", "")
        level = _DOCX_HEADING.match(style)
        if style.lower() == "title":
            lines.append(f"# {text}")
        elif level:
            lines.append(f"{'#' * min(int(level.group(1)), 6)} {text}")
        elif "list" in style.lower():
            lines.append(f"- {text}")
        else:
            lines.append(text)
        lines.append("")
    return "\n".join(lines)


def _title_from_name(name: str) -> str:
    words = re.sub(r"[_\-]+", " ", PurePath(name).stem).strip()
    return words[:1].upper() + words[1:] or name
