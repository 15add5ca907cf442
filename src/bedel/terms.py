"""Spanish text as every package compares it: folded, split into sentences, analysed into search terms.

One folding for student fields, opt-out words, identity facts, the search index and quoted answers, so
what a student writes and what a record or document says meet on the same terms. A question's chat
shortcuts ("q", "x", "pa") are spelt out first (`spell_out`), and an English question is carried into Spanish words by a
school vocabulary (english.toml), so it finds the Spanish documents.
"""

import hashlib
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import Stemmer
from bm25s.stopwords import STOPWORDS_EN, STOPWORDS_SPANISH
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein

_WORD = re.compile(r"[a-z0-9]+")
# Chat filler that says nothing about the topic ("hola, quiero saber...").
_CHAT_WORDS = (
    "hola", "buenas", "buenos", "dias", "tardes", "noches", "gracias", "favor", "porfa", "oye",
    "quiero", "quisiera", "saber", "necesito", "puedo", "puede", "pueden", "podria", "hay", "tengo",
    "tienen", "dime", "decir", "informacion", "info", "pregunta", "duda", "cual", "cuales", "cuando",
    "cuanto", "cuanta", "cuantos", "cuantas", "donde", "como", "que", "quien", "y", "o", "dan", "dar", "den",
    "llama", "llaman", "oigan", "onda", "interesa", "interesan", "sucede", "entrar",
)  # fmt: skip


def fold(text: str) -> str:
    """Lower case without accents: "Inscripción" and "inscripcion" are the same word."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


_stemmer = Stemmer.Stemmer("spanish")
SYNONYMS_FILE = Path(__file__).with_name("synonyms.toml")
ENGLISH_FILE = Path(__file__).with_name("english.toml")
# Part of every saved index's identity: editing the synonyms or shortcuts rebuilds the indexes.
SYNONYMS_DIGEST = hashlib.sha256(SYNONYMS_FILE.read_bytes()).hexdigest()[:16]
_SYNONYMS = tomllib.loads(SYNONYMS_FILE.read_text(encoding="utf-8"))
_CANONICAL = {fold(word): fold(group[0]) for group in _SYNONYMS["groups"] for word in group}
# A word the synonyms name is a term, though a stop word elsewhere ("contra" for "contraseña").
_STOP_WORDS = frozenset(fold(word) for word in (*STOPWORDS_SPANISH, *_CHAT_WORDS)) - _CANONICAL.keys()


def _phrases(table: dict[str, str]) -> tuple[re.Pattern[str], dict[str, str]]:
    """A pattern finding any key as whole words (longest first) and what each key becomes."""
    mapping = {" ".join(_WORD.findall(fold(key))): fold(value) for key, value in table.items()}
    keys = sorted(mapping, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(re.escape(key) for key in keys) + r")\b"), mapping


def _replace(text: str, phrases: tuple[re.Pattern[str], dict[str, str]]) -> str:
    pattern, mapping = phrases
    words = " ".join(_WORD.findall(fold(text)))
    return pattern.sub(lambda match: mapping[match.group(0)], words)


_SHORTCUTS = _phrases(_SYNONYMS["shortcuts"])
_ENGLISH = _phrases(tomllib.loads(ENGLISH_FILE.read_text(encoding="utf-8"))["words"])
# Words that only one of the two languages uses ("a" and "no" are both).
_ENGLISH_ONLY = frozenset(STOPWORDS_EN) - frozenset(STOPWORDS_SPANISH)
_ENGLISH_CUES = _ENGLISH_ONLY | {
    "i", "you", "my", "your", "do", "does", "did", "how", "what", "when", "where", "which", "who", "why",
    "can", "could", "would", "should", "much", "many", "please", "hi", "hello", "hey", "thanks", "want",
    "need", "have", "has", "am", "get", "pay", "help", "start", "someone", "somebody", "person", "talk",
    "speak", "its", "im", "dont", "whats", "from", "about", "some", "any",
}  # fmt: skip
_SPANISH_CUES = (frozenset(fold(word) for word in STOPWORDS_SPANISH) | frozenset(_CHAT_WORDS)) - {"a", "no"}


def spell_out(text: str) -> str:
    """Folded words with chat shortcuts spelt out: "q onda x fa" -> "que onda por favor"."""
    return _replace(text, _SHORTCUTS)


def is_english(text: str) -> bool:
    """Whether a question is written in English: more words only English uses than words only Spanish does."""
    words = _WORD.findall(fold(text.replace("'", "")))
    english = sum(word in _ENGLISH_CUES for word in words)
    return english > 0 and english > sum(word in _SPANISH_CUES for word in words)


def to_spanish(text: str) -> str:
    """An English question in the Spanish words a school's documents use, by the school vocabulary;
    English stop words go, words it does not know (names, "wifi", "visa") stay."""
    words = _replace(text, _ENGLISH).split()
    return " ".join(word for word in words if word not in _ENGLISH_CUES and word != "a")


# Each synonym's own stem and the group's: a misspelt synonym ("colegiatrua") is corrected to its group.
SYNONYM_STEMS = {str(_stemmer.stemWord(word)): str(_stemmer.stemWord(group)) for word, group in _CANONICAL.items()}


# A misspelt term ("inscripsion") is corrected only when it is long enough that one or two slips
# cannot turn it into another word ("estadio" is not "estudio").
_SPELLING = ((12, 2), (8, 1))  # (at least this long, at most this many edits)


def spellings(terms: Iterable[str]) -> dict[str, str]:
    """What a misspelt term may be corrected to: each of `terms`, and each synonym's own stem
    standing for its group's term when that term is among them ("colegiatur" -> "mensual")."""
    known = {term: term for term in terms if term.isalpha()}
    return known | {plain: group for plain, group in SYNONYM_STEMS.items() if group in known}


def nearest(term: str, candidates: dict[str, str], choices: Sequence[str]) -> list[str]:
    """The terms `term` misspells: the candidates fewest edits away (a swap of two letters is one),
    within what its length allows; none for a short or known term. `choices` is `list(candidates)`."""
    edits = next((most for least, most in _SPELLING if len(term) >= least), 0)
    if not edits or term in candidates or not term.isalpha():
        return []
    matches = process.extract(term, choices, scorer=DamerauLevenshtein.distance, score_cutoff=edits, limit=8)
    if not matches:
        return []
    fewest = min(distance for _, distance, _ in matches)
    return list(dict.fromkeys(candidates[found] for found, distance, _ in matches if distance == fewest))


def english_words(text: str) -> str:
    """An English question's own words less its function words: "health insurance" as written,
    for the English documents a school may have."""
    words = _WORD.findall(fold(text.replace("'", "")))
    return " ".join(word for word in words if word not in _ENGLISH_CUES and word != "a")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return str(_stemmer.stemWord(_CANONICAL.get(word, word)))


def analyze(text: str) -> list[str]:
    """The index terms of `text`, in order: folded, stop words out, Snowball-stemmed."""
    return [_stem(word) for word in _WORD.findall(fold(text)) if word not in _STOP_WORDS]


# Abbreviations of addresses, titles and numbers, and initials ("A.C.", "S.C."), end in a period but
# not a sentence ("Centro de Estudios, A.C. Blvd. Campestre 2850").
_ABBREVIATIONS = (
    "Blvd",
    "Av",
    "Col",
    "Calz",
    "No",
    "Núm",
    "Ext",
    "Tel",
    "Edif",
    "Lic",
    "Ing",
    "Dr",
    "Dra",
    "Mtro",
    "Mtra",
)
_SENTENCE_END = re.compile(
    "".join(rf"(?<!\b{word}\.)" for word in _ABBREVIATIONS)
    + r"(?<!\b[A-Z]\.)(?<=[.!?…])\s+(?=[¿¡\"(«]?[A-ZÁÉÍÓÚÑÜ0-9])|\n+"
)


def split_sentences(text: str) -> list[str]:
    """Sentences and lines (list items, table rows) of a passage, stripped, empties dropped."""
    return [piece.strip() for piece in _SENTENCE_END.split(text) if piece.strip()]
