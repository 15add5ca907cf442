"""Build the prompt: instructions, the caller's own record, a summary and the recent turns."""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment

from bedel.config import ConfigError
from bedel.llm.ports import Passage, Prompt, Turn
from bedel.llm.tokens import estimate_tokens
from bedel.students.fields import FieldCatalog
from bedel.students.schemas import StudentRecord

DEFAULT_INSTRUCTIONS = Path(__file__).with_name("instructions.md.j2")
LANGUAGE_NAMES = {"es": "español", "en": "English", "pt": "português", "fr": "français"}

# The tags that set data apart in the instructions; data that writes one could pass for instructions.
_DATA_TAG = re.compile(r"<(?=\s*/?\s*(?:registro|documento|resumen)\b)", re.IGNORECASE)

# Templates are written by staff, so they run sandboxed.
_environment = SandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, autoescape=False)


@dataclass(frozen=True)
class AssistantOptions:
    model: str
    temperature: float
    max_output_tokens: int
    history_token_budget: int
    language: str
    institution_name: str
    contact: str
    passages_limit: int
    min_relevance: float


_PROBE_STUDENT = {
    "name": "Ana",
    "external_id": "A1",
    "email": "ana@example.edu",
    "attributes": {"saldo": "100"},
    "fields": [{"label": "Saldo", "value": "100"}],
}


_PROBE_PASSAGES = [{"number": 1, "title": "Calendario", "heading": "Inicio", "text": "Las clases inician el lunes."}]


def compile_instructions(source: str) -> Any:
    """Compile an instructions template once and try it on a known and an unknown caller.

    A template that fails either way is a `ConfigError` before any question is stored.
    """
    try:
        template = _environment.from_string(source)
        for student in (_PROBE_STUDENT, None):
            template.render(
                institution_name="",
                contact="",
                language="es",
                language_name="español",
                student=student,
                summary="",
                passages=_PROBE_PASSAGES,
            )
    except TemplateError as exc:
        raise ConfigError(f"BEDEL_INSTRUCTIONS_FILE: the template fails ({exc}); fix the template") from None
    return template


def load_instructions(path: Path | None) -> Any:
    source_path = path or DEFAULT_INSTRUCTIONS
    try:
        source = source_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"BEDEL_INSTRUCTIONS_FILE: cannot read {source_path} ({exc.strerror}); "
            "point it to a readable Jinja2 file or unset it"
        ) from None
    return compile_instructions(source)


def fit_history(turns: list[Turn], budget: int) -> list[Turn]:
    """The most recent turns whose estimated tokens fit `budget`, oldest first."""
    kept: list[Turn] = []
    used = 0
    for turn in reversed(turns):
        used += estimate_tokens(turn.content) + 4
        if used > budget:
            break
        kept.append(turn)
    kept.reverse()
    return kept


def build_prompt(
    *,
    template: Any,
    options: AssistantOptions,
    catalog: FieldCatalog,
    student: StudentRecord | None,
    summary: str,
    history: list[Turn],
    question: str,
    passages: list[Passage],
    search_text: str | None = None,
) -> Prompt:
    try:
        instructions = template.render(
            institution_name=options.institution_name,
            contact=options.contact,
            language=options.language,
            language_name=LANGUAGE_NAMES.get(options.language, options.language),
            student=_record_as_data(_student_context(student, catalog)),
            summary=_as_data(summary),
            passages=[
                {"number": number, "title": _as_data(p.title), "heading": _as_data(p.heading), "text": _as_data(p.text)}
                for number, p in enumerate(passages, 1)
            ],
        )
    except TemplateError as exc:
        raise ConfigError(f"BEDEL_INSTRUCTIONS_FILE: the template failed to render ({exc})") from None
    messages = [{"role": "system", "content": instructions}]
    messages += [{"role": turn.role, "content": turn.content} for turn in history]
    messages.append({"role": "user", "content": question})
    return Prompt(
        messages=messages,
        question=question,
        student=student,
        history=history,
        passages=passages,
        model=options.model,
        temperature=options.temperature,
        max_output_tokens=options.max_output_tokens,
        language=options.language,
        search_text=search_text,
    )


def _as_data(text: str) -> str:
    """Text from a document, a record or a summary, unable to close or open the tag it sits in."""
    return _DATA_TAG.sub("‹", text)


def _record_as_data(context: dict[str, Any] | None) -> dict[str, Any] | None:
    if context is None:
        return None
    fields = [{"label": _as_data(str(f["label"])), "value": _as_data(str(f["value"]))} for f in context["fields"]]
    return {**context, "fields": fields}


def _student_context(student: StudentRecord | None, catalog: FieldCatalog) -> dict[str, Any] | None:
    if student is None:
        return None
    fields = [{"label": "Nombre", "value": student.name}] if student.name else []
    if student.external_id:
        fields.append({"label": "Matrícula", "value": student.external_id})
    if student.email:
        fields.append({"label": "Correo", "value": student.email})
    fields += [
        {"label": catalog.label_for(column), "value": value}
        for column, value in student.attributes.items()
        if value not in (None, "")
    ]
    return {
        "name": student.name,
        "external_id": student.external_id,
        "email": student.email,
        "attributes": student.attributes,
        "fields": fields,
    }


def record_fields(student: StudentRecord | None, catalog: FieldCatalog) -> list[dict[str, Any]]:
    """The caller's record as the instructions show it, label and value (none for an unknown caller)."""
    context = _student_context(student, catalog)
    return context["fields"] if context else []
