"""The catalog of record fields: which column holds which concept, and which words ask for it.

Institutions name their columns as they like; the catalog (an editable TOML file,
`fields.toml` next to this module or BEDEL_FIELDS_FILE) maps them to concepts, so the
offline engine, the instructions template and the importer understand any school's records.

A column is read as words: camelCase split, accents and case folded, the catalog's
abbreviations written out ("fec" -> "fecha"), units and small words dropped ("_mxn", "de").
It holds a concept when its words are those of one of the concept's columns, in any order;
failing that, when they contain one concept's column words and no other's ("monto total
adeudado" holds "monto adeudado").
"""

import functools
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bedel.config import ConfigError
from bedel.terms import fold

FieldKind = Literal["money", "number", "text", "date"]
IdentityRole = Literal["phone", "name", "email", "external_id"]

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_WORD = re.compile(r"[a-z0-9]+")
_SEPARATORS = re.compile(r"[\W_]+")
# Keyword words this long also match longer words ("adeud" -> "adeudos"); shorter must be equal.
_PREFIX_MIN = 4
_COLUMN_STOP_WORDS = frozenset(
    {"de", "del", "la", "el", "los", "las", "y", "e", "o", "en", "por", "para", "con", "al", "a"}
    | {"mi", "mis", "su", "sus", "the", "of", "and", "to", "in", "by"}
)
# Lookups remembered per catalog: the chat engine reads every column of a record on each question.
_LOOKUP_CACHE = 4096
# Words that ask when, in Spanish and English.
_WHEN = frozenset({"cuando", "when"})
_AND = frozenset({"y", "e", "and"})

T = TypeVar("T")


def fold_words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


def normalize_column(name: str) -> str:
    """Comparable column name: "Saldo Pendiente" -> "saldo_pendiente", "E-mail" -> "e_mail"."""
    return _NON_ALNUM.sub("_", fold(name)).strip("_")


def _column_forms(name: str) -> tuple[str, ...]:
    # camelCase columns are also tried split ("balanceDue" -> balance_due), but
    # "WhatsApp" must still find "whatsapp".
    split = normalize_column(_CAMEL_BOUNDARY.sub("_", name))
    plain = normalize_column(name)
    return (plain,) if split == plain else (plain, split)


def humanize_column(name: str) -> str:
    """A readable label for a column no concept claims: "fecha_nacimiento" -> "Fecha nacimiento"."""
    words = [word for word in _SEPARATORS.split(_CAMEL_BOUNDARY.sub(" ", name)) if word]
    if not words:
        return name
    shown = [word if word.isupper() else word.lower() for word in words]
    return " ".join(shown)[:1].upper() + " ".join(shown)[1:]


def _word_matches(word: str, key: str) -> bool:
    return word == key or (len(key) >= _PREFIX_MIN and word.startswith(key))


class PhraseMatcher(Generic[T]):
    """Finds phrases among folded words, leftmost-longest, each word used by one phrase only."""

    def __init__(self, phrases: Iterable[tuple[str, T]]) -> None:
        entries = [(tuple(fold_words(phrase)), value) for phrase, value in phrases]
        ranked = sorted((entry for entry in entries if entry[0]), key=_rank, reverse=True)
        # Indexed by first word so a question only tries the phrases that can start at each word.
        self._by_first: dict[str, list[tuple[tuple[str, ...], T]]] = {}
        for entry in ranked:
            self._by_first.setdefault(entry[0][0], []).append(entry)

    def find(self, words: Sequence[str]) -> list[T]:
        found: list[T] = []
        position = 0
        while position < len(words):
            match = self._match_at(words, position)
            if match is None:
                position += 1
                continue
            keys, value = match
            found.append(value)
            position += len(keys)
        return found

    def _match_at(self, words: Sequence[str], position: int) -> tuple[tuple[str, ...], T] | None:
        """The highest-ranked phrase starting here: the first word matches whole or by a long prefix."""
        word = words[position]
        firsts = [word, *(word[:length] for length in range(len(word) - 1, _PREFIX_MIN - 1, -1))]
        best: tuple[tuple[str, ...], T] | None = None
        for first in firsts:
            for keys, value in self._by_first.get(first, ()):
                window = words[position : position + len(keys)]
                if len(window) == len(keys) and all(map(_word_matches, window, keys)):
                    if best is None or _rank((keys, value)) > _rank(best):
                        best = (keys, value)
                    break
        return best


def _rank(entry: tuple[tuple[str, ...], object]) -> tuple[int, int]:
    """Longest phrase first, then the one with the most letters."""
    return len(entry[0]), sum(map(len, entry[0]))


@dataclass(frozen=True, eq=False)
class FieldConcept:
    key: str
    label: str
    kind: FieldKind
    columns: tuple[str, ...]
    keywords: tuple[str, ...]
    # The concept that says when this one is due: "¿cuánto debo y para cuándo?" asks both.
    due: str | None = None


class FieldCatalog:
    """Concepts of a student record, the columns that hold them and the words that ask for them."""

    def __init__(
        self,
        concepts: Sequence[FieldConcept],
        identity: Mapping[IdentityRole, Sequence[str]],
        ignored_phrases: Sequence[str] = (),
        abbreviations: Mapping[str, str] | None = None,
        units: Sequence[str] = (),
        qualifiers: Sequence[str] = (),
    ) -> None:
        self.concepts = tuple(concepts)
        self.identity: dict[IdentityRole, tuple[str, ...]] = {
            role: tuple(normalize_column(column) for column in columns) for role, columns in identity.items()
        }
        self._abbreviations = {
            normalize_column(short): normalize_column(full) for short, full in (abbreviations or {}).items()
        }
        self._units = frozenset(normalize_column(unit) for unit in units)
        self._qualifiers = frozenset(normalize_column(word) for word in qualifiers)
        self._by_column = _unique_index(
            (self._key(column), concept.key, concept) for concept in self.concepts for column in concept.columns
        )
        self._role_by_column = _unique_index(
            (self._key(column), role, role) for role, columns in self.identity.items() for column in columns
        )
        # For columns no name matches whole: each concept's and role's column words.
        self._word_sets: list[tuple[frozenset[str], str, FieldConcept | None]] = [
            (frozenset(key.split(" ")), concept.key, concept) for key, concept in self._by_column.items()
        ] + [(frozenset(key.split(" ")), f"role:{role}", None) for key, role in self._role_by_column.items()]
        self._concept_by_name = functools.lru_cache(maxsize=_LOOKUP_CACHE)(self._find_concept)
        keywords = _unique_index(
            (" ".join(fold_words(keyword)), concept.key, concept)
            for concept in self.concepts
            for keyword in concept.keywords
        )
        ignored: list[tuple[str, FieldConcept | None]] = [(p, None) for p in ignored_phrases]
        self._questions = PhraseMatcher([*keywords.items(), *ignored])

    @classmethod
    def from_toml(cls, text: str) -> "FieldCatalog":
        """Parse a catalog; raises `ValueError` naming what is wrong."""
        spec = _CatalogSpec.model_validate(tomllib.loads(text))
        concepts = [
            FieldConcept(key, c.label, c.kind, tuple(c.columns), tuple(c.keywords), c.due)
            for key, c in spec.concepts.items()
        ]
        for key, c in spec.concepts.items():
            if c.due is not None and c.due not in spec.concepts:
                raise ValueError(f"concepts.{key}.due names no concept: {c.due!r}")
        identity: dict[IdentityRole, Sequence[str]] = {
            "phone": spec.identity.phone,
            "name": spec.identity.name,
            "email": spec.identity.email,
            "external_id": spec.identity.external_id,
        }
        columns = spec.columns
        return cls(concepts, identity, spec.questions.ignore, columns.abbreviations, columns.units, columns.qualifiers)

    def concept(self, key: str) -> FieldConcept | None:
        return next((concept for concept in self.concepts if concept.key == key), None)

    def concept_for_column(self, column: str) -> FieldConcept | None:
        return self._concept_by_name(column)

    def identity_role(self, column: str) -> IdentityRole | None:
        """Which of the importer's identity fields a column holds, if any: whole names only, so
        "nombre del tutor" is not read as the student's name."""
        return _lookup(self._role_by_column, self._keys(column))

    def identity_concept(self, role: IdentityRole) -> FieldConcept | None:
        """The concept that also holds an identity field (the email concept for "email")."""
        for column in self.identity.get(role, ()):
            if (concept := self._by_column.get(self._key(column))) is not None:
                return concept
        return None

    def column_words(self, column: str) -> tuple[str, ...]:
        """A column name as the catalog reads it: "Fec_Límite_MXN" -> ("fecha", "limite"),
        "Celular del alumno" -> ("celular",); a qualifier alone stays ("alumno")."""
        words: list[str] = []
        for word in normalize_column(_CAMEL_BOUNDARY.sub("_", column)).split("_"):
            words.extend(self._abbreviations.get(word, word).split("_"))
        kept = [word for word in words if word and word not in self._units and word not in _COLUMN_STOP_WORDS]
        meaning = [word for word in kept if word not in self._qualifiers]
        return tuple(meaning or kept)

    def _key(self, column: str) -> str:
        # Words in order of the alphabet: "pago_fecha" and "fecha_pago" are one column.
        return " ".join(sorted(self.column_words(column)))

    def _keys(self, column: str) -> list[str]:
        # "WhatsApp" split is "whats app": its unsplit form is tried first.
        plain = " ".join(sorted(self.column_words(column.lower())))
        return list(dict.fromkeys([plain, self._key(column)]))

    def _find_concept(self, column: str) -> FieldConcept | None:
        if (concept := _lookup(self._by_column, self._keys(column))) is not None:
            return concept
        if _lookup(self._role_by_column, self._keys(column)) is not None:
            return None  # a role's column with no concept (the phone): nothing more to guess
        return self._concept_within(frozenset(self.column_words(column)))

    def _concept_within(self, words: frozenset[str]) -> FieldConcept | None:
        """The one concept whose column words the name contains, most words first; a tie between
        owners, or an identity role's words winning ("teléfono del tutor"), is no answer. The
        words found must outnumber the others ("año de ingreso" is no school year)."""
        found = [
            (len(keys), sum(map(len, keys)), owner, concept)
            for keys, owner, concept in self._word_sets
            if keys <= words and 2 * len(keys) > len(words)
        ]
        if not found:
            return None
        best = max(found, key=lambda entry: entry[:2])
        owners = {owner for size, letters, owner, _ in found if (size, letters) == best[:2]}
        return best[3] if len(owners) == 1 else None

    def label_for(self, column: str) -> str:
        concept = self.concept_for_column(column)
        return concept.label if concept is not None else humanize_column(column)

    def concepts_in_question(self, question: str) -> list[FieldConcept]:
        """The concepts a question asks about, in the order it names them; a concept's due date
        too when the question goes on to ask when ("¿cuánto debo y para cuándo?"), though not when it
        only asks when ("¿cuándo se paga la colegiatura?" is the documents' to answer)."""
        words = fold_words(question)
        found = {id(c): c for c in self._questions.find(words) if c is not None}
        if not _WHEN.isdisjoint(words) and not _AND.isdisjoint(words):
            for concept in list(found.values()):
                if concept.due is not None and (due := self.concept(concept.due)) is not None:
                    found.setdefault(id(due), due)
        return list(found.values())

    def columns_in_question(self, question: str, columns: Iterable[str]) -> list[str]:
        """The given columns a question names ("fecha de nacimiento" -> fecha_nacimiento)."""
        words = fold_words(question)
        return [column for column in columns if _names_column(words, column)]


def _lookup(index: Mapping[str, T], keys: Iterable[str]) -> T | None:
    return next((index[key] for key in keys if key in index), None)


def _unique_index(entries: Iterable[tuple[str, str, T]]) -> dict[str, T]:
    index: dict[str, T] = {}
    owners: dict[str, str] = {}
    for name, owner, value in entries:
        if name in owners and owners[name] != owner:
            raise ValueError(f"{name!r} is listed under both {owners[name]!r} and {owner!r}")
        owners[name] = owner
        index[name] = value
    return index


def _names_column(words: Sequence[str], column: str) -> bool:
    column_words = [word for word in _column_forms(column)[-1].split("_") if word not in _COLUMN_STOP_WORDS]
    return bool(column_words) and all(
        any(_same_stem(word, column_word) for word in words) for column_word in column_words
    )


def _same_stem(word: str, column_word: str) -> bool:
    # Columns abbreviate ("fecha_nac"); questions use singular or plural ("crédito", "creditos").
    return (
        word == column_word
        or (len(column_word) >= 3 and word.startswith(column_word))
        or (len(word) >= _PREFIX_MIN and column_word.startswith(word))
    )


_Names = list[Annotated[str, Field(min_length=1)]]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _IdentitySpec(_Spec):
    phone: _Names = Field(min_length=1)
    name: _Names = Field(min_length=1)
    email: _Names = Field(min_length=1)
    external_id: _Names = Field(min_length=1)


class _QuestionsSpec(_Spec):
    ignore: _Names = Field(default_factory=list)


class _ConceptSpec(_Spec):
    label: str = Field(min_length=1)
    kind: FieldKind
    columns: _Names = Field(min_length=1)
    keywords: _Names = Field(default_factory=list)
    due: str | None = None


class _ColumnsSpec(_Spec):
    abbreviations: dict[Annotated[str, Field(min_length=1)], Annotated[str, Field(min_length=1)]] = Field(
        default_factory=dict
    )
    units: _Names = Field(default_factory=list)
    qualifiers: _Names = Field(default_factory=list)


class _CatalogSpec(_Spec):
    identity: _IdentitySpec
    columns: _ColumnsSpec = Field(default_factory=_ColumnsSpec)
    questions: _QuestionsSpec = Field(default_factory=_QuestionsSpec)
    concepts: dict[str, _ConceptSpec] = Field(min_length=1)


@functools.lru_cache(maxsize=8)
def load_field_catalog(path: Path | None = None) -> FieldCatalog:
    """The catalog at `path` (settings.fields_file), or the default one; read once per path."""
    source = str(path) if path is not None else "the default field catalog"
    try:
        if path is None:
            text = resources.files("bedel.students").joinpath("fields.toml").read_text("utf-8")
        else:
            text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"BEDEL_FIELDS_FILE: cannot read {source} ({exc}); "
            "fix BEDEL_FIELDS_FILE or unset it to use the default catalog"
        ) from None
    try:
        return FieldCatalog.from_toml(text)
    except ValidationError as exc:
        problem = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'catalog'}: {error['msg']}" for error in exc.errors()[:3]
        )
    except ValueError as exc:  # TOML syntax, or a column or keyword claimed twice
        problem = str(exc)
    raise ConfigError(f"BEDEL_FIELDS_FILE: {source} is not a valid field catalog ({problem}); fix BEDEL_FIELDS_FILE")
