"""The output guard: no answer carries another student's identifiers.

Whatever the model writes (obeying an instruction hidden in a document, echoing a phone the
student typed, quoting a list of other students) passes here before it is stored or sent on any
channel. A sentence that holds a phone, email, matrícula, CURP or full name of any student other
than the caller is replaced by a placeholder, the identifier written plainly or disguised (spaced
out, in leetspeak, in base64).
The text is compared with every student through one indexed query on hashed keys
(`students/lookup.py`), and only when it holds something that could be an identifier.
"""

import base64
import binascii
import bisect
import collections
import functools
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import structlog

from bedel.ops.metrics import count_withheld
from bedel.students.lookup import NAME_WORDS, email_key, id_key, name_key, name_words, phone_keys

log = structlog.get_logger()

# Looks up hashed keys: (key, kind, phone of the student it belongs to) for those stored.
KeyLookup = Callable[[Sequence[str]], Awaitable[Sequence[tuple[str, str, str]]]]

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Digits with the separators people write phones with: "+52 1 (55) 1234-5678", "5 5 1 2 ...".
_DIGIT_RUN = re.compile(r"\d(?:[\s().+-]{0,3}\d){7,}")
_ID_TOKEN = re.compile(r"[\w/-]*\d[\w/-]*")
# Words of a name: letters, apart by spaces, hyphens or apostrophes, never across a line or a full stop.
_NAME_RUN = re.compile(r"[^\W\d_]+(?:[ \t'’-]+[^\W\d_]+)+")
_WORD = re.compile(r"[^\W\d_]+")
_LEET_WORD = re.compile(r"\b(?=\w*[^\W\d_])(?=\w*\d)\w+\b")
_LEET = str.maketrans("0134578", "oieastb")
# Characters written one by one: "L u i s  P é r e z", "a n a @ x . m x".
_SPACED = re.compile(r"(?<!\S)\S(?: {1,3}\S(?!\S)){4,}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{12,}={0,2}")
# Names are tried up to as many words as their keys hold.
_LONGEST_NAME = NAME_WORDS
# A name neither starts nor ends with these, so a run of words is not tried from or to them.
_FUNCTION_WORDS = (
    "a al con de del e el en es la las lo los mi o para por que se si su sus te tu u un una y "
    "and are at for from has he her his in is it of on or she the to with you your"
)
_NOT_NAME_ENDS = frozenset(_FUNCTION_WORDS.split())
# Where a streamed answer may be cut and guarded: after a sentence, or a line.
_SENTENCE_END = re.compile(r"[.!?…](?=\s)|\n")
# A sentence end that an identifier may run across, so a stream is not cut there while what follows
# (or has not arrived yet) may go on with it: a separator inside a run of digits ("55 8765.\n4321"),
# or a lone character of a spelled-out one ("s o f i a . h e r n a n d e z"). Nothing else the guard
# looks for holds a line break, or a full stop followed by a space.
_DIGITS_BEFORE = re.compile(r"\d[\s().+-]{1,3}\Z")
_DIGITS_AFTER = re.compile(r"[\s().+-]{0,2}(?:\d|\Z)")
_SPELLED_BEFORE = re.compile(r"(?<!\S)[.!?…]\Z")
_SPELLED_AFTER = re.compile(r" {0,3}\Z| {1,3}\S(?!\S)")


class _Candidate(NamedTuple):
    start: int
    end: int
    key: str


@dataclass(frozen=True)
class Guarded:
    text: str
    # The kinds of identifier withheld (phone, email, matricula, curp, name), once per sentence.
    withheld: collections.Counter[str]


async def withhold_others(text: str, lookup: KeyLookup, *, caller: str | None, placeholder: str) -> Guarded:
    """`text` with every sentence that holds an identifier of a student other than the one whose
    phone is `caller` withheld: the whole sentence, so the amount or grade beside a name goes too."""
    candidates = list(_candidates(text))
    if not candidates:
        return Guarded(text, collections.Counter())
    owners = await lookup(list({candidate.key for candidate in candidates}))
    own = {key for key, _, phone in owners if phone == caller}
    foreign = {key: kind for key, kind, phone in owners if key not in own}
    hits = [(candidate, foreign[candidate.key]) for candidate in candidates if candidate.key in foreign]
    if not hits:
        return Guarded(text, collections.Counter())
    ends = [0, *(match.end() for match in _SENTENCE_END.finditer(text)), len(text)]
    sentences: dict[tuple[int, int], set[str]] = {}
    for candidate, kind in hits:
        start = ends[bisect.bisect_right(ends, candidate.start) - 1]
        end = ends[bisect.bisect_left(ends, candidate.end)]
        sentences.setdefault((start, end), set()).add(kind)
    kinds: collections.Counter[str] = collections.Counter()
    parts, position = [], 0
    for (start, end), found in sorted(sentences.items()):
        kinds.update(found)
        if end <= position:
            continue
        # A hit spanning two sentences (a phone cut by a line) took the next one along.
        start = max(start, position)
        sentence = text[start:end]
        lead = len(sentence) - len(sentence.lstrip())
        trail = len(sentence.rstrip())
        parts += [text[position : start + lead], placeholder, sentence[trail:]]
        position = max(position, end)
    parts.append(text[position:])
    return Guarded("".join(parts), kinds)


def report_withheld(guarded: Guarded, thread_id: uuid.UUID | None) -> None:
    """A security event without the data: what kinds were withheld, how many, in which conversation."""
    if not guarded.withheld:
        return
    count_withheld(guarded.withheld)
    log.warning(
        "guard_withheld",
        thread_id=str(thread_id) if thread_id else None,
        kinds=sorted(guarded.withheld),
        count=sum(guarded.withheld.values()),
    )


class SentenceBuffer:
    """Holds a streamed answer back to whole sentences, so each is guarded before it is sent.

    It cuts only where no identifier can run across the cut, so the pieces guarded one by one
    withhold exactly what guarding the whole answer at once withholds."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, delta: str) -> str:
        """The sentences completed by `delta` (possibly none)."""
        text = self._pending + delta
        ends = [end.end() for end in _SENTENCE_END.finditer(text) if not _joined_at(text, end.end())]
        cut = ends[-1] if ends else 0
        self._pending = text[cut:]
        return text[:cut]

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        return text


def _joined_at(text: str, cut: int) -> bool:
    """Whether an identifier may run across `cut`, given the text so far."""
    return bool(
        (_DIGITS_BEFORE.search(text, 0, cut) and _DIGITS_AFTER.match(text, cut))
        or (_SPELLED_BEFORE.search(text, 0, cut) and _SPELLED_AFTER.match(text, cut))
    )


def _candidates(text: str) -> Iterator[_Candidate]:
    yield from _plain_candidates(text)
    # Leetspeak keeps each character's place, so its names map straight back to the text.
    leet = _LEET_WORD.sub(lambda match: match.group().translate(_LEET), text)
    if leet != text:
        yield from _name_candidates(leet)
    for match in _SPACED.finditer(text):
        collapsed = " ".join(word.replace(" ", "") for word in re.split(r" {2,}", match.group()))
        yield from _whole(match, _plain_candidates(collapsed))
        yield _Candidate(match.start(), match.end(), name_key(["".join(name_words(match.group()))]))
    for match in _BASE64.finditer(text):
        try:
            decoded = base64.b64decode(match.group(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue
        yield from _whole(match, _plain_candidates(decoded))


def _whole(match: re.Match[str], found: Iterator[_Candidate]) -> Iterator[_Candidate]:
    """Candidates found in a decoded piece of text stand for the whole piece."""
    for candidate in found:
        yield _Candidate(match.start(), match.end(), candidate.key)


def _plain_candidates(text: str) -> Iterator[_Candidate]:
    for match in _EMAIL.finditer(text):
        yield _Candidate(match.start(), match.end(), email_key(match.group()))
    for match in _DIGIT_RUN.finditer(text):
        for phone in phone_keys("".join(ch for ch in match.group() if ch.isdigit())):
            yield _Candidate(match.start(), match.end(), phone)
    for match in _ID_TOKEN.finditer(text):
        if identifier := id_key(match.group()):
            yield _Candidate(match.start(), match.end(), identifier)
    yield from _name_candidates(text)


def _name_candidates(text: str) -> Iterator[_Candidate]:
    for run in _NAME_RUN.finditer(text):
        base = run.start()
        words = [(match.start(), match.end(), _folded(match.group())) for match in _WORD.finditer(run.group())]
        for first, (start, _, head) in enumerate(words[:-1]):
            if head in _NOT_NAME_ENDS:
                continue
            for last in range(first + 1, min(first + _LONGEST_NAME, len(words))):
                if words[last][2] not in _NOT_NAME_ENDS:
                    key = name_key([word for _, _, word in words[first : last + 1]])
                    yield _Candidate(base + start, base + words[last][1], key)


@functools.lru_cache(maxsize=16384)
def _folded(word: str) -> str:
    """A word as `name_words` folds it; answers repeat their words, so each is folded once."""
    return " ".join(name_words(word))
