"""Spanish text as every package compares it: folded, split into sentences, analysed into search terms.

One folding for student fields, opt-out words, identity facts, the search index and quoted answers, so
what a student writes and what a record or document says meet on the same terms.
"""

import hashlib
import re
import tomllib
import unicodedata
from functools import lru_cache
from pathlib import Path

import Stemmer
from bm25s.stopwords import STOPWORDS_SPANISH

_WORD = re.compile(r"[a-z0-9]+")
# Chat filler that says nothing about the topic ("hola, quiero saber...").
_CHAT_WORDS = (
    "hola", "buenas", "buenos", "dias", "tardes", "noches", "gracias", "favor", "porfa", "oye",
    "quiero", "quisiera", "saber", "necesito", "puedo", "puede", "pueden", "podria", "hay", "tengo",
    "tienen", "dime", "decir", "informacion", "info", "pregunta", "duda", "cual", "cuales", "cuando",
    "cuanto", "cuanta", "cuantos", "cuantas", "donde", "como", "que", "quien", "y", "o",
)  # fmt: skip


def fold(text: str) -> str:
    """Lower case without accents: "Inscripción" and "inscripcion" are the same word."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


_STOP_WORDS = frozenset(fold(word) for word in (*STOPWORDS_SPANISH, *_CHAT_WORDS))
_stemmer = Stemmer.Stemmer("spanish")
SYNONYMS_FILE = Path(__file__).with_name("synonyms.toml")
# Part of every saved index's identity: editing the synonyms rebuilds the indexes.
SYNONYMS_DIGEST = hashlib.sha256(SYNONYMS_FILE.read_bytes()).hexdigest()[:16]


def _synonyms() -> dict[str, str]:
    groups = tomllib.loads(SYNONYMS_FILE.read_text(encoding="utf-8"))["groups"]
    return {fold(word): fold(group[0]) for group in groups for word in group}


_CANONICAL = _synonyms()


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return str(_stemmer.stemWord(_CANONICAL.get(word, word)))


def analyze(text: str) -> list[str]:
    """The index terms of `text`, in order: folded, stop words out, Snowball-stemmed."""
    return [_stem(word) for word in _WORD.findall(fold(text)) if word not in _STOP_WORDS]


_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=[¿¡\"(«]?[A-ZÁÉÍÓÚÑÜ0-9])|\n+")


def split_sentences(text: str) -> list[str]:
    """Sentences and lines (list items, table rows) of a passage, stripped, empties dropped."""
    return [piece.strip() for piece in _SENTENCE_END.split(text) if piece.strip()]
