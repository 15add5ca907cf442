"""The output guard: no answer carries another student's identifiers.

Whatever the model writes (obeying an instruction hidden in a document, echoing a phone the
student typed, quoting a list of other students) passes here before it is stored or sent on any
channel. Phones, emails, matrículas, CURPs and full names of any student other than the caller
are replaced by a placeholder, written plainly or disguised (spaced out, in leetspeak, in base64).
The text is compared with every student through one indexed query on hashed keys
(`students/lookup.py`), and only when it holds something that could be an identifier.
"""

import base64
import binascii
import collections
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

import structlog

from bedel.ops.metrics import count_withheld
from bedel.students.lookup import email_key, id_key, name_key, name_words, phone_keys

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
_NAME_SIZES = range(2, 5)
# A name neither starts nor ends with these, so a run of words is not tried from or to them.
_FUNCTION_WORDS = (
    "a al con de del e el en es la las lo los mi o para por que se si su sus te tu u un una y "
    "and are at for from has he her his in is it of on or she the to with you your"
)
_NOT_NAME_ENDS = frozenset(_FUNCTION_WORDS.split())
# Where a streamed answer may be cut and guarded: after a sentence, or a line.
_SENTENCE_END = re.compile(r"[.!?…](?=\s)|\n")


@dataclass(frozen=True)
class _Candidate:
    start: int
    end: int
    key: str


@dataclass(frozen=True)
class Guarded:
    text: str
    # The kind of every identifier withheld (phone, email, matricula, curp, name), one per place.
    withheld: collections.Counter[str]


async def withhold_others(text: str, lookup: KeyLookup, *, caller: str | None, placeholder: str) -> Guarded:
    """`text` with every identifier of a student other than the one whose phone is `caller` withheld."""
    candidates = list(_candidates(text))
    if not candidates:
        return Guarded(text, collections.Counter())
    owners = await lookup(list({candidate.key for candidate in candidates}))
    own = {key for key, _, phone in owners if phone == caller}
    foreign = {key: kind for key, kind, phone in owners if key not in own}
    hits = sorted((c.start, c.end, foreign[c.key]) for c in candidates if c.key in foreign)
    if not hits:
        return Guarded(text, collections.Counter())
    kinds: collections.Counter[str] = collections.Counter()
    parts, position = [], 0
    for start, end, kind in hits:
        if start < position:
            # Overlaps the span just withheld (a name inside a spaced run, a phone in its digits' windows).
            position = max(position, end)
            continue
        kinds[kind] += 1
        parts += [text[position:start], placeholder]
        position = end
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
    """Holds a streamed answer back to whole sentences, so each is guarded before it is sent."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, delta: str) -> str:
        """The sentences completed by `delta` (possibly none)."""
        text = self._pending + delta
        ends = [match.end() for match in _SENTENCE_END.finditer(text)]
        cut = ends[-1] if ends else 0
        self._pending = text[cut:]
        return text[:cut]

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        return text


def _candidates(text: str) -> Iterator[_Candidate]:
    yield from _plain_candidates(text)
    # Leetspeak keeps each character's place, so its names map straight back to the text.
    leet = _LEET_WORD.sub(lambda match: match.group().translate(_LEET), text)
    if leet != text:
        yield from _name_candidates(leet)
    for match in _SPACED.finditer(text):
        collapsed = " ".join(word.replace(" ", "") for word in re.split(r" {2,}", match.group()))
        yield from _whole(match, _plain_candidates(collapsed))
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
        folded = [(m.start(), m.end(), " ".join(name_words(m.group()))) for m in _WORD.finditer(run.group())]
        for size in _NAME_SIZES:
            for first in range(len(folded) - size + 1):
                window = folded[first : first + size]
                if window[0][2] in _NOT_NAME_ENDS or window[-1][2] in _NOT_NAME_ENDS:
                    continue
                yield _Candidate(
                    run.start() + window[0][0], run.start() + window[-1][1], name_key(w[2] for w in window)
                )
