"""A deterministic `ChatModel` that answers from the caller's own record, in the catalogue's words.

It needs no network and no weights (development, demos, tests, the default provider),
and it never invents personal data: what the record lacks, it says it lacks.
"""

import json
import math
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from bedel.llm.extractive import passage_answer
from bedel.llm.ports import Completion, Prompt, Toolbox, Turn, Usage
from bedel.llm.tokens import estimate_tokens
from bedel.students.fields import (
    FieldCatalog,
    FieldConcept,
    FieldKind,
    IdentityRole,
    PhraseMatcher,
    humanize_column,
)
from bedel.students.schemas import StudentRecord
from bedel.terms import spell_out, to_spanish
from bedel.texts.catalog import Texts, texts_for

SUMMARY_MAX_CHARS = 1500
_QUESTION_MAX_CHARS = 200
_WORDS_PER_DELTA = 4

_GREETING_PHRASES = (
    "hola", "holi", "buen dia", "buenos dias", "buenas", "saludos", "que tal", "hey", "hi", "hello",
    "good morning", "good afternoon", "good evening", "ayud", "help", "necesito informacion",
)  # fmt: skip
# Words that, on their own, only greet or ask for help in general: "Hola, necesito ayuda." says no topic.
_SMALL_TALK = frozenset(
    {
        "hola", "holi", "holis", "buen", "buena", "buenas", "bueno", "buenos", "dia", "dias", "tarde", "tardes",
        "noche", "noches", "saludos", "que", "tal", "oye", "oigan", "ayuda", "ayudar", "ayudame", "ayudarme",
        "ayudas", "necesito", "ocupo", "quiero", "tengo", "una", "un", "pregunta", "duda", "dudas", "me", "te",
        "puedes", "puede", "pueden", "podrias", "por", "favor", "informacion", "a", "y", "o",
        "hi", "hey", "hello", "good", "morning", "afternoon", "evening", "help", "need", "some", "please",
        "can", "could", "you", "i", "have", "question", "with", "want",
    }
)  # fmt: skip
# "¿Quién es mi asesor?" asks the record; "quiero hablar con un asesor" asks for a person.
_HANDOFF_PHRASES = (
    "habl con", "platic con", "comunic con", "comuniq con", "contact con", "pasame con",
    "pasen con", "una persona", "alguna persona", "persona real", "un human", "una human", "con human",
    "ser human", "agente", "operador", "pued llam", "llamen", "llamame", "marquen", "marcame",
    "me atiend", "atiend alguien", "atiendam", "me marqu", "marqu alguien", "quiero un asesor",
    "quiero asesor", "asesor human", "con alguien",
    # English: what the English texts tell a student to write ("I want to talk to a person") and the like.
    "talk to", "talk with", "speak to", "speak with", "a person", "real person", "a human", "connect me",
    "representative",
)  # fmt: skip
# A rule, requirement, consequence or procedure: the documents answer it even when it names a record
# field ("¿qué promedio piden para titularse?", "si me paso de la fecha de pago, ¿qué pasa?",
# "olvidé mi matrícula, ¿qué hago?").
_RULE_PHRASES = (
    "pide", "piden", "pedir", "requisit", "necesit", "que sucede", "que me sucede", "pued", "se pued",
    "alcanz", "toca", "me dan", "por que", "conserv", "manten", "perder", "pierd", "minim", "maxim",
    "permit", "como", "donde", "tengo que hacer", "hay que", "hasta cuando", "que hago", "que hace",
    "what happens", "can i", "do i need", "required", "requirement", "minimum", "maximum", "allowed",
    "why", "how do", "how can", "what do i do", "what should i do",
)  # fmt: skip
_GREETINGS = PhraseMatcher((phrase, True) for phrase in _GREETING_PHRASES)
_HANDOFF = PhraseMatcher((phrase, True) for phrase in _HANDOFF_PHRASES)
_RULES = PhraseMatcher((phrase, True) for phrase in _RULE_PHRASES)
_REPEATED_END = re.compile(r"(\w)\1+$")
_POSSESSIVES = frozenset({"mi", "mis", "my"})
# Verbs that ask about the one who writes ("¿cuánto debo?"), where a concept alone may be general
# ("¿cuánto es la colegiatura?").
_FIRST_PERSON = frozenset({"debo", "adeudo", "tengo", "llevo", "estoy", "owe"})
_MONEY = re.compile(r"-?\$?\s*(\d{1,3}(,\d{3})+|\d+)(\.\d+)?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([T ].*)?")
_PIECES = re.compile(r"\s*\S+\s*")


@dataclass(frozen=True)
class _Field:
    column: str
    concept: FieldConcept | None
    value: Any


class OfflineModel:
    """Answers greetings, questions about the caller's own record and requests for a person."""

    def __init__(self, catalog: FieldCatalog, institution_name: str, contact: str) -> None:
        self._catalog = catalog
        self._institution = institution_name
        self._contact = contact

    async def complete(self, prompt: Prompt, tools: Toolbox) -> Completion:
        text = await self._answer(prompt, tools)
        input_tokens = sum(estimate_tokens(m.get("content", "")) for m in prompt.messages)
        usage = Usage(input_tokens, estimate_tokens(text), estimated=True)
        return Completion(text=text, usage=usage, model="offline")

    async def stream(self, prompt: Prompt, tools: Toolbox) -> AsyncIterator[str | Completion]:
        completion = await self.complete(prompt, tools)
        pieces = _PIECES.findall(completion.text)
        for start in range(0, len(pieces), _WORDS_PER_DELTA):
            yield "".join(pieces[start : start + _WORDS_PER_DELTA])
        yield completion

    async def summarize(self, summary: str, turns: list[Turn], language: str) -> str:
        """Keep the previous summary and the student's questions, newest last, bounded in length."""
        lines = [summary.strip()] if summary.strip() else []
        lines += [
            f"- Preguntó: {_shorten(turn.content, _QUESTION_MAX_CHARS)}"
            for turn in turns
            if turn.role == "user" and turn.content.strip()
        ]
        return _keep_tail("\n".join(lines), SUMMARY_MAX_CHARS)

    async def search_terms(self, question: str) -> tuple[str, Usage]:
        """The school vocabulary's Spanish words for an English question."""
        return to_spanish(question), Usage(0, 0)

    async def aclose(self) -> None:
        return None

    async def _answer(self, prompt: Prompt, tools: Toolbox) -> str:
        # "q", "x", "pa": what students write on WhatsApp, spelt out before anything is matched.
        spelled = spell_out(prompt.question)
        words = spelled.split()
        student = prompt.student
        texts = texts_for(prompt.language)
        parts = [self._hello(student, texts)] if _GREETINGS.find(words) else []
        if _HANDOFF.find(words):
            reason = f"Pidió hablar con una persona: {_shorten(prompt.question, 200)}"
            # The chat service tells the student that a person takes over.
            await tools.call("request_human", json.dumps({"reason": reason}, ensure_ascii=False))
            return _joined(parts)
        fields = _record_fields(self._catalog, student) if student is not None else []
        if all(_REPEATED_END.sub(r"\1", word) in _SMALL_TALK for word in words):
            # "Hola, necesito ayuda.": a greeting by name and what Bedel can do, not a passage about help desks.
            return f"{self._hello(student, texts)} {self._offer(fields if student else None, texts)}"
        concepts = self._catalog.concepts_in_question(spelled)
        possessive = not _POSSESSIVES.isdisjoint(words)
        personal = bool(concepts) or possessive
        found, missing = self._record_answer(spelled, concepts, fields, texts, possessive=possessive)
        document = (passage_answer(prompt, texts) or "") if prompt.passages else ""
        if document and (not personal or _RULES.find(words)):
            # A rule is the documents' to answer; the student's own value goes beside it when the record has it.
            parts += [found, document] if found else [document]
        elif found:
            parts += [found, missing] if missing else [found]
        elif missing and possessive and student is not None:
            # "¿cuál es mi promedio?" asks the record, even when a document mentions averages.
            parts.append(missing)
        elif student is None and concepts and (possessive or not _FIRST_PERSON.isdisjoint(words)):
            # "¿cuánto debo de colegiatura?" from a number nobody knows: no passage stands in for the record.
            parts.append(texts.no_record.format(contact=self._contact))
        elif document:
            parts.append(document)
        elif student is None:
            if personal:
                parts.append(texts.no_record.format(contact=self._contact))
            else:
                parts.append(self._offer(None, texts) if parts else texts.unknown_answer.format(contact=self._contact))
        elif missing:
            parts.append(missing)
        elif personal:
            parts.append(texts.missing_field.format(contact=self._contact))
        else:
            parts.append(self._offer(fields, texts) if parts else texts.unknown_answer.format(contact=self._contact))
        return _joined(parts)

    def _record_answer(
        self,
        question: str,
        concepts: Sequence[FieldConcept],
        fields: Sequence[_Field],
        texts: Texts,
        *,
        possessive: bool,
    ) -> tuple[str, str]:
        """What the record says about the question, and what it lacks."""
        found: list[tuple[str, str]] = []
        missing: list[str] = []
        for concept in concepts:
            present = [f for f in fields if f.concept is concept and not _is_blank(f.value)]
            if not present:
                missing.append(concept.label)
            for field in present:
                label = concept.label if len(present) == 1 else humanize_column(field.column)
                found.append((label, format_value(field.value, concept.kind, texts)))
        # Columns no concept claims answer when the question names them about the student
        # ("¿cuál es mi fecha de nacimiento?"), not in passing ("el teléfono de la escuela").
        others = {f.column: f for f in fields if f.concept is None} if possessive else {}
        for column in self._catalog.columns_in_question(question, others):
            if _is_blank(others[column].value):
                missing.append(humanize_column(column))
            else:
                found.append((humanize_column(column), format_value(others[column].value, "text", texts)))
        if len(missing) == 1:
            absent = texts.missing_one.format(field=missing[0], contact=self._contact)
        elif missing:
            absent = texts.missing_many.format(fields=", ".join(missing), contact=self._contact)
        else:
            absent = ""
        said = texts.record_says + "\n" + "\n".join(f"- {k}: {v}" for k, v in found) if found else ""
        return said, absent

    def _hello(self, student: StudentRecord | None, texts: Texts) -> str:
        name = (student.name or "").strip() if student else ""
        if not name:
            return texts.hello
        return texts.hello_name.format(name=name.title() if name.isupper() else name)

    def _offer(self, fields: Sequence[_Field] | None, texts: Texts) -> str:
        if fields is None:
            return texts.offer_without_record.format(institution=self._institution, contact=self._contact)
        labels = [f.concept.label.lower() for f in fields if f.concept and not _is_blank(f.value)]
        topics = ", ".join(dict.fromkeys(labels[:4])) or texts.record_topics
        return texts.offer_with_record.format(institution=self._institution, topics=topics)


def _record_fields(catalog: FieldCatalog, student: StudentRecord) -> list[_Field]:
    fields = [_Field(column, catalog.concept_for_column(column), value) for column, value in student.attributes.items()]
    # The record's own fields (name, email, id, phone) answer too, unless an attribute already does.
    taken = {catalog.identity_role(column) for column in student.attributes}
    own: list[tuple[IdentityRole, str | None]] = [
        ("name", student.name),
        ("email", student.email),
        ("external_id", student.external_id),
        ("phone", student.phone),
    ]
    for role, value in own:
        columns = catalog.identity.get(role, ())
        if value and columns and role not in taken:
            fields.append(_Field(columns[0], catalog.identity_concept(role), value))
    return fields


def format_value(value: Any, kind: FieldKind, texts: Texts) -> str:
    """Show a record value: money as $4,500.00, dates as dd/mm/yyyy, the rest as given."""
    if isinstance(value, bool):
        return texts.yes if value else texts.no
    if kind == "money" and (amount := _as_decimal(value)) is not None:
        return f"{'-' if amount < 0 else ''}${abs(amount):,.2f}"
    if kind == "date":
        return _format_date(value)
    if isinstance(value, dict):
        return "; ".join(f"{humanize_column(str(k))}: {format_value(v, 'text', texts)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(format_value(item, "text", texts) for item in value)
    if isinstance(value, float | Decimal):
        return f"{value:.2f}".rstrip("0").rstrip(".") if math.isfinite(value) else str(value)
    return str(value).strip()


def _as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, int | float | Decimal):
        amount = Decimal(str(value))
    elif isinstance(value, str) and _MONEY.fullmatch(value.strip()):
        amount = Decimal(re.sub(r"[$,\s]", "", value))
    else:
        return None
    return amount if amount.is_finite() else None


def _format_date(value: Any) -> str:
    if isinstance(value, date | datetime):
        return value.strftime("%d/%m/%Y")
    text = str(value).strip()
    if _ISO_DATE.fullmatch(text):
        try:
            return date.fromisoformat(text[:10]).strftime("%d/%m/%Y")
        except ValueError:
            return text
    return text


def _is_blank(value: Any) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    if isinstance(value, str | list | dict | tuple):
        return not (value.strip() if isinstance(value, str) else value)
    return False


def _shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _keep_tail(text: str, limit: int) -> str:
    """The newest `limit` characters, starting at a line when possible."""
    if len(text) <= limit:
        return text
    tail = text[-(limit - 1) :]
    newline = tail.find("\n")
    return "…" + (tail[newline + 1 :] if newline != -1 else tail)


def _joined(parts: list[str]) -> str:
    """Sentences run on; after a list (the record's fields, a quoted passage) the next part starts a paragraph."""
    text = ""
    for part in filter(None, parts):
        text += ("\n\n" if "\n" in text else " ") + part if text else part
    return text
