"""`bedel eval`: run question/expected-fact cases through /chat and measure the answers.

Each case asks its `history` first, then its question, from its own new phone, or as the
student whose phone it names in `student` (the thread is deleted afterwards). Reported, in
total and for each `kind` of case: retrieval hit rate (the expected document among the
answer's sources; for a case that no passage answers, no sources at all), answer fact rate
(expected regexes found in the answer) and forbidden facts found; then handoffs recognised
(cases that ask for a person answered with `handoff`) and unknown numbers answered from
documents (`unknown_number` cases citing their document with every fact and no forbidden one).
"""

import json
import re
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bedel.errors import InvalidInput

# Phones no school hands out: +52 999 followed by the case number.
_PHONE_PREFIX = "+52999"


class Kind(StrEnum):
    """What a case tests; each kind is reported on its own."""

    document = "document"  # a question the documents answer
    record = "record"  # the asking student's own data
    record_and_document = "record_and_document"  # a rule that names a record field, or both at once
    english = "english"  # asked in English
    whatsapp = "whatsapp"  # typos, slang and shortcuts
    followup = "followup"  # only clear after its `history`
    handoff = "handoff"  # asks for a person
    greeting = "greeting"  # a greeting, or a request for help that says nothing more
    unknown_number = "unknown_number"  # a general question from a phone not on the list
    unanswerable = "unanswerable"  # the documents do not answer it


# Kinds whose right answer cites no passage: any source is a retrieval miss.
_NO_SOURCES = {Kind.unanswerable, Kind.greeting, Kind.handoff}


class EvalCase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    # Inferred from `expected_document` when a case leaves it out (see `_infer_kind`).
    kind: Kind = Kind.document
    question: str = Field(min_length=1)
    expected_document: str | None
    expected_facts: list[str] = []
    forbidden_facts: list[str] = []
    history: list[str] = []
    student: str | None = Field(default=None, description="the phone of a student on the list to ask as")
    expect_handoff: bool = False

    @model_validator(mode="before")
    @classmethod
    def _infer_kind(cls, data: Any) -> Any:
        """Cases written before kinds existed are about a document, or about none."""
        if isinstance(data, dict) and "kind" not in data:
            return {**data, "kind": Kind.document if data.get("expected_document") else Kind.unanswerable}
        return data

    @field_validator("expected_facts", "forbidden_facts")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            re.compile(pattern)
        return patterns


class CaseResult(BaseModel):
    id: str
    kind: Kind
    hit: bool | None = Field(description="None where retrieval is not measured: a record answer may cite or not")
    facts_found: int
    facts_expected: int
    forbidden_found: list[str]
    handoff: bool
    expect_handoff: bool
    answer: str
    sources: list[str]

    @property
    def answered_from_documents(self) -> bool:
        return bool(self.hit) and self.facts_found == self.facts_expected and not self.forbidden_found

    @property
    def missed(self) -> bool:
        wrong_handoff = self.handoff != self.expect_handoff
        return (
            self.hit is False or self.facts_found < self.facts_expected or bool(self.forbidden_found) or wrong_handoff
        )


class Tally(BaseModel):
    """Counts of a group of cases: one kind, or all of them."""

    cases: int
    hits: int
    hits_measured: int
    facts_found: int
    facts_expected: int
    forbidden_violations: int
    handoffs_recognised: int
    handoffs_expected: int
    unwanted_handoffs: int
    unknown_answered: int
    unknown_asked: int

    @classmethod
    def of(cls, results: Iterable[CaseResult]) -> "Tally":
        group = list(results)
        unknown = [r for r in group if r.kind == Kind.unknown_number and r.hit is not None]
        return cls(
            cases=len(group),
            hits=sum(r.hit is True for r in group),
            hits_measured=sum(r.hit is not None for r in group),
            facts_found=sum(r.facts_found for r in group),
            facts_expected=sum(r.facts_expected for r in group),
            forbidden_violations=sum(len(r.forbidden_found) for r in group),
            handoffs_recognised=sum(r.handoff for r in group if r.expect_handoff),
            handoffs_expected=sum(r.expect_handoff for r in group),
            unwanted_handoffs=sum(r.handoff for r in group if not r.expect_handoff),
            unknown_answered=sum(r.answered_from_documents for r in unknown),
            unknown_asked=len(unknown),
        )


class EvalReport(BaseModel):
    cases: int
    hit_rate: float
    fact_rate: float
    forbidden_violations: int
    handoff_rate: float | None
    unknown_answered_rate: float | None
    total: Tally
    kinds: dict[Kind, Tally]
    results: list[CaseResult]


def load_cases(path: Path) -> list[EvalCase]:
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            cases.append(EvalCase.model_validate_json(line))
        except (ValidationError, re.error) as exc:
            raise InvalidInput(f"{path}:{number}: not a valid case ({exc})") from None
    if not cases:
        raise InvalidInput(f"{path}: no cases")
    return cases


async def run_eval(client: httpx.AsyncClient, cases: list[EvalCase]) -> EvalReport:
    """Ask every case through `client` (a running Bedel, in process or over HTTP)."""
    for phone in sorted({case.student for case in cases if case.student}):
        await _checked(client.get(f"/students/{phone}"))  # a mistyped phone would ask as an unknown number
    documents = await _checked(client.get("/knowledge/documents"))
    source_of = {document["id"]: document["source"] for document in documents}
    results = [await _run_case(client, number, case, source_of) for number, case in enumerate(cases)]
    total = Tally.of(results)
    asked_kinds = {r.kind for r in results}
    hit_rate = _rate(total.hits, total.hits_measured)
    fact_rate = _rate(total.facts_found, total.facts_expected)
    return EvalReport(
        cases=total.cases,
        hit_rate=1.0 if hit_rate is None else hit_rate,
        fact_rate=1.0 if fact_rate is None else fact_rate,
        forbidden_violations=total.forbidden_violations,
        handoff_rate=_rate(total.handoffs_recognised, total.handoffs_expected),
        unknown_answered_rate=_rate(total.unknown_answered, total.unknown_asked),
        total=total,
        kinds={kind: Tally.of(r for r in results if r.kind == kind) for kind in Kind if kind in asked_kinds},
        results=results,
    )


def _rate(part: int, whole: int) -> float | None:
    """None when nothing was measured (the totals then count as full: nothing was missed)."""
    return round(part / whole, 4) if whole else None


async def _run_case(client: httpx.AsyncClient, number: int, case: EvalCase, source_of: dict[str, str]) -> CaseResult:
    phone = case.student or f"{_PHONE_PREFIX}{number:07d}"
    answer: dict[str, Any] = {}
    try:
        for question in [*case.history, case.question]:
            answer = await _checked(client.post("/chat", json={"phone": phone, "question": question}))
    finally:
        if answer:
            await client.delete(f"/threads/{answer['thread_id']}")
    text = answer["answer"]
    sources = [source_of.get(source["document_id"], source["title"]) for source in answer["sources"]]
    return CaseResult(
        id=case.id,
        kind=case.kind,
        hit=_hit(case, sources),
        facts_found=sum(bool(re.search(p, text, re.IGNORECASE)) for p in case.expected_facts),
        facts_expected=len(case.expected_facts),
        forbidden_found=[p for p in case.forbidden_facts if re.search(p, text, re.IGNORECASE)],
        handoff=bool(answer.get("handoff")),
        expect_handoff=case.expect_handoff,
        answer=text,
        sources=sources,
    )


def _hit(case: EvalCase, sources: list[str]) -> bool | None:
    if case.expected_document:
        return any(_names(source, case.expected_document) for source in sources)
    if case.kind in _NO_SOURCES:
        return not sources
    return None


def _names(source: str, expected: str) -> bool:
    """Whether a document's source (a file name, or a path as `kb add` records it) is the expected file."""
    return source == expected or source.endswith(f"/{expected}")


async def _checked(request: Any) -> Any:
    response: httpx.Response = await request
    if response.status_code >= 400:
        what = f"{response.request.method} {response.request.url.path}"
        raise InvalidInput(f"{what}: HTTP {response.status_code} {response.text[:300]}")
    return response.json()


def format_report(report: EvalReport) -> str:
    """The totals, a table of the kinds, then every case that missed something."""
    lines = [
        f"cases: {report.cases}",
        f"retrieval hit rate: {report.hit_rate:.1%}",
        f"answer fact rate: {report.fact_rate:.1%}",
        f"forbidden facts: {report.forbidden_violations}",
        f"handoffs recognised: {_share(report.total.handoffs_recognised, report.total.handoffs_expected)}",
        f"handoffs nobody asked for: {report.total.unwanted_handoffs}",
        "unknown numbers answered from documents: " + _share(report.total.unknown_answered, report.total.unknown_asked),
        "",
        *format_kinds(report),
        "",
    ]
    return "\n".join([*lines, *format_misses(report)])


def format_misses(report: EvalReport) -> list[str]:
    """One line for each case that missed something, with the start of its answer."""
    lines = []
    for result in (r for r in report.results if r.missed):
        answer = json.dumps(result.answer[:200], ensure_ascii=False)
        lines.append(
            f"- {result.id} ({result.kind}): hit={result.hit} facts={result.facts_found}/{result.facts_expected} "
            f"forbidden={result.forbidden_found} handoff={result.handoff} sources={result.sources} answer={answer}"
        )
    return lines


def format_kinds(report: EvalReport) -> list[str]:
    """A Markdown table: one row per kind of case, and the totals."""
    lines = [
        "| kind | cases | retrieval hits | answer facts | forbidden facts | handoffs recognised | unwanted handoffs |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for name, tally in [*((str(kind), tally) for kind, tally in report.kinds.items()), ("all", report.total)]:
        lines.append(
            f"| {name} | {tally.cases} | {_share(tally.hits, tally.hits_measured)} "
            f"| {_share(tally.facts_found, tally.facts_expected)} | {tally.forbidden_violations} "
            f"| {_share(tally.handoffs_recognised, tally.handoffs_expected)} | {tally.unwanted_handoffs} |"
        )
    return lines


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%} ({part}/{whole})" if whole else "–"
