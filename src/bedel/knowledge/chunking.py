"""Split a Markdown document into passages that stand on their own.

A heading stays with the paragraphs under it (its path travels with every chunk
of the section), a list stays with the sentence that introduces it, and chunks
are sized in estimated tokens with an overlap of whole sentences, so a fact cut
at a boundary is still whole in one of the two chunks.
"""

from dataclasses import dataclass

from markdown_it import MarkdownIt

from bedel.llm.tokens import estimate_tokens
from bedel.terms import split_sentences

CHUNK_TOKENS = 220
OVERLAP_TOKENS = 40

_markdown = MarkdownIt("commonmark").enable("table")
_LISTS = ("bullet_list_open", "ordered_list_open")
_TABLE = "table_open"


@dataclass(frozen=True)
class Chunk:
    position: int
    heading: str  # "Section > Subsection"
    text: str
    token_count: int


@dataclass(frozen=True)
class _Unit:
    heading: str
    text: str
    is_list: bool = False
    is_table: bool = False


def chunk_markdown(markdown: str, max_tokens: int = CHUNK_TOKENS, overlap: int = OVERLAP_TOKENS) -> list[Chunk]:
    chunks: list[Chunk] = []
    for heading, units in _sections(markdown):
        for text in _pack(units, max_tokens, overlap):
            chunks.append(Chunk(len(chunks), heading, text, estimate_tokens(text)))
    return chunks


def _sections(markdown: str) -> list[tuple[str, list[_Unit]]]:
    """Top-level blocks grouped by the heading path above them; an intro joins its list."""
    lines = markdown.split("\n")
    tokens = _markdown.parse(markdown)
    path: list[tuple[int, str]] = []
    sections: list[tuple[str, list[_Unit]]] = []
    for index, token in enumerate(tokens):
        if token.level != 0 or token.nesting == -1 or token.map is None:
            continue
        if token.type == "heading_open":
            level = int(token.tag[1:])
            path = [(lvl, text) for lvl, text in path if lvl < level]
            path.append((level, tokens[index + 1].content.strip()))
            continue
        text = "\n".join(lines[token.map[0] : token.map[1]]).strip()
        if not text:
            continue
        heading = " > ".join(text for _, text in path)
        if not sections or sections[-1][0] != heading:
            sections.append((heading, []))
        units = sections[-1][1]
        is_list = token.type in _LISTS
        is_table = token.type == _TABLE
        introduced = units and not (units[-1].is_list or units[-1].is_table) and units[-1].text.rstrip().endswith(":")
        if (is_list or is_table) and introduced:
            intro = units.pop()
            units.append(_Unit(heading, f"{intro.text}\n{text}", is_list=is_list, is_table=is_table))
        else:
            units.append(_Unit(heading, text, is_list=is_list, is_table=is_table))
    return sections


def _pack(units: list[_Unit], max_tokens: int, overlap: int) -> list[str]:
    pieces: list[tuple[str, bool]] = []
    for unit in units:
        by_line = unit.is_list or unit.is_table
        # Pieces leave room for the overlap that may precede them.
        pieces += [(text, by_line) for text in _split_unit(unit, max_tokens - overlap)]
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for piece, by_line in pieces:
        cost = estimate_tokens(piece)
        if current and size + cost > max_tokens:
            chunks.append("\n\n".join(current))
            # Overlap only into prose: a list or table piece starts with its own intro or header.
            current = [] if by_line else _tail(current[-1], min(overlap, max_tokens - cost))
            size = sum(estimate_tokens(part) for part in current)
        current.append(piece)
        size += cost
    if current:
        chunks.append("\n\n".join(current))
    return chunks


def _split_unit(unit: _Unit, max_tokens: int) -> list[str]:
    """A unit that fits is kept whole; a long one is cut at sentences or rows.

    Every piece of a list keeps the sentence that introduces it, and every piece of
    a table keeps its header row.
    """
    if estimate_tokens(unit.text) <= max_tokens:
        return [unit.text]
    lines = unit.text.split("\n")
    header = next((i for i, line in enumerate(lines) if line.lstrip().startswith("|")), 0) + 2 if unit.is_table else 0
    head = 1 if unit.is_list and lines[0].rstrip().endswith(":") else header
    intro = "\n".join(lines[:head])
    by_line = unit.is_list or unit.is_table
    sentences = [line for line in lines[head:] if line.strip()] if by_line else split_sentences(unit.text)
    budget = max_tokens - estimate_tokens(intro)
    sentences = [piece for sentence in sentences for piece in _words_within(sentence, budget)]
    parts: list[str] = []
    current: list[str] = []
    for sentence in sentences:
        if current and estimate_tokens(" ".join([*current, sentence])) > budget:
            parts.append(_join(intro, current, by_line))
            current = []
        current.append(sentence)
    if current:
        parts.append(_join(intro, current, by_line))
    return parts


def _words_within(sentence: str, budget: int) -> list[str]:
    """A sentence longer than the budget (a run-on line, a PDF without punctuation), cut between words."""
    if estimate_tokens(sentence) <= budget:
        return [sentence]
    pieces: list[str] = []
    words: list[str] = []
    letters = 0
    for word in sentence.split():
        # estimate_tokens of the words so far plus this one, kept as a running sum.
        if words and (letters + len(word) + 3 * (len(words) + 1)) // 4 > budget:
            pieces.append(" ".join(words))
            words, letters = [], 0
        words.append(word)
        letters += len(word)
    return [*pieces, " ".join(words)] if words else pieces


def _join(intro: str, sentences: list[str], by_line: bool) -> str:
    body = ("\n" if by_line else " ").join(sentences)
    return f"{intro}\n{body}" if intro else body


def _tail(text: str, overlap: int) -> list[str]:
    """The last whole sentences of `text` that fit in `overlap` tokens."""
    kept: list[str] = []
    if overlap <= 0:
        return kept
    for sentence in reversed(split_sentences(text)):
        if estimate_tokens(" ".join([sentence, *kept])) > overlap:
            break
        kept.insert(0, sentence)
    return [" ".join(kept)] if kept else []
