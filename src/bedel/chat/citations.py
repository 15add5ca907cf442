"""Passage citations: the model marks what it used with [n]; students see clean text, staff the sources."""

import re

from bedel.chat.schemas import Source
from bedel.llm.ports import Passage

SNIPPET_CHARS = 300
_MARKER = re.compile(r"\s?\[(\d{1,2}(?:\s*,\s*\d{1,2})*)\]")
# Trailing space, or an unclosed "[" near the end of a streamed delta, may be the start of a marker.
_OPEN_MARKER = re.compile(r"\s?\[[\d,\s]{0,8}$|\s+$")


def cited_sources(text: str, passages: list[Passage]) -> tuple[str, list[Source]]:
    """The answer without markers, and the passages it cites (in order of first citation)."""
    cited: list[Passage] = []
    for match in _MARKER.finditer(text):
        for number in match.group(1).split(","):
            index = int(number) - 1
            if 0 <= index < len(passages) and passages[index] not in cited:
                cited.append(passages[index])
    clean = _MARKER.sub("", text).strip()
    return clean, [_source(passage) for passage in cited]


class MarkerFilter:
    """Removes citation markers from a stream of deltas, holding back a marker cut in two."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, delta: str) -> str:
        text = _MARKER.sub("", self._pending + delta)
        held = _OPEN_MARKER.search(text)
        self._pending = text[held.start() :] if held else ""
        return text[: held.start()] if held else text

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        return text


def _source(passage: Passage) -> Source:
    snippet = " ".join(passage.text.split())
    if len(snippet) > SNIPPET_CHARS:
        snippet = snippet[: SNIPPET_CHARS - 1].rstrip() + "…"
    return Source(document_id=passage.document_id, title=passage.title, snippet=snippet, score=passage.score)
