"""`bedel eval`: run question/expected-fact cases through /chat and measure the answers.

Each case talks from its own new phone (and the thread is deleted afterwards), asks
its `history` first, then its question. Reported: retrieval hit rate (the expected
document among the answer's sources; for a case with no expected document, no
sources at all), answer fact rate (expected regexes found in the answer), and
forbidden facts found.
"""

import json
import re
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bedel.errors import InvalidInput

# Phones no school hands out: +52 999 followed by the case number.
_PHONE_PREFIX = "+52999"


class EvalCase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    question: str = Field(min_length=1)
    expected_document: str | None
    expected_facts: list[str] = []
    forbidden_facts: list[str] = []
    history: list[str] = []

    @field_validator("expected_facts", "forbidden_facts")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            re.compile(pattern)
        return patterns


class CaseResult(BaseModel):
    id: str
    hit: bool
    facts_found: int
    facts_expected: int
    forbidden_found: list[str]
    answer: str
    sources: list[str]


class EvalReport(BaseModel):
    cases: int
    hit_rate: float
    fact_rate: float
    forbidden_violations: int
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
    documents = await _checked(client.get("/knowledge/documents"))
    source_of = {document["id"]: document["source"] for document in documents}
    results = [await _run_case(client, number, case, source_of) for number, case in enumerate(cases)]
    facts_expected = sum(r.facts_expected for r in results)
    return EvalReport(
        cases=len(results),
        hit_rate=round(sum(r.hit for r in results) / len(results), 4),
        fact_rate=round(sum(r.facts_found for r in results) / facts_expected, 4) if facts_expected else 1.0,
        forbidden_violations=sum(len(r.forbidden_found) for r in results),
        results=results,
    )


async def _run_case(client: httpx.AsyncClient, number: int, case: EvalCase, source_of: dict[str, str]) -> CaseResult:
    phone = f"{_PHONE_PREFIX}{number:07d}"
    answer: dict[str, Any] = {}
    try:
        for question in [*case.history, case.question]:
            answer = await _checked(client.post("/chat", json={"phone": phone, "question": question}))
    finally:
        if answer:
            await client.delete(f"/threads/{answer['thread_id']}")
    text = answer["answer"]
    sources = [source_of.get(source["document_id"], source["title"]) for source in answer["sources"]]
    hit = any(_names(source, case.expected_document) for source in sources) if case.expected_document else not sources
    return CaseResult(
        id=case.id,
        hit=hit,
        facts_found=sum(bool(re.search(p, text, re.IGNORECASE)) for p in case.expected_facts),
        facts_expected=len(case.expected_facts),
        forbidden_found=[p for p in case.forbidden_facts if re.search(p, text, re.IGNORECASE)],
        answer=text,
        sources=sources,
    )


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
    lines = [
        f"cases: {report.cases}",
        f"retrieval hit rate: {report.hit_rate:.1%}",
        f"answer fact rate: {report.fact_rate:.1%}",
        f"forbidden facts: {report.forbidden_violations}",
    ]
    misses = [r for r in report.results if not r.hit or r.facts_found < r.facts_expected or r.forbidden_found]
    for result in misses:
        answer = json.dumps(result.answer[:200], ensure_ascii=False)
        lines.append(
            f"- {result.id}: hit={result.hit} facts={result.facts_found}/{result.facts_expected} "
            f"forbidden={result.forbidden_found} sources={result.sources} answer={answer}"
        )
    return "\n".join(lines)
