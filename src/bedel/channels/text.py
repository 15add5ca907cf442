"""Fit an answer into a channel's message length, breaking between sentences."""

import re

# A sentence ends at . ! ? or … followed by space; a paragraph at a blank line.
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n\s*\n")


def split_message(text: str, limit: int) -> list[str]:
    """Parts of at most `limit` characters, each ending on a sentence boundary where one fits.

    A sentence longer than `limit` is cut between words, and a word longer than
    `limit` is cut where it must be.
    """
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    parts: list[str] = []
    current = ""
    for sentence in _pieces(text, limit):
        candidate = f"{current} {sentence}" if current else sentence
        if len(candidate) <= limit:
            current = candidate
            continue
        parts.append(current)
        current = sentence
    if current:
        parts.append(current)
    return parts


def _pieces(text: str, limit: int) -> list[str]:
    pieces: list[str] = []
    for sentence in filter(None, (s.strip() for s in _SENTENCE_END.split(text))):
        if len(sentence) <= limit:
            pieces.append(sentence)
            continue
        pieces.extend(_cut_words(sentence, limit))
    return pieces


def _cut_words(sentence: str, limit: int) -> list[str]:
    pieces: list[str] = []
    current = ""
    for word in sentence.split():
        while len(word) > limit:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:limit])
            word = word[limit:]
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= limit:
            current = candidate
        else:
            pieces.append(current)
            current = word
    if current:
        pieces.append(current)
    return pieces
