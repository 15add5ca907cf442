"""`bedel eval`'s metrics, computed on hand-made cases against a Bedel whose answers the test decides."""

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bedel.errors import InvalidInput
from bedel.knowledge.evaluation import EvalCase, format_report, load_cases, run_eval

DOCUMENTS = [
    {"id": "doc-fees", "source": "colegiaturas.md", "title": "Colegiaturas y pagos"},
    {"id": "doc-calendar", "source": "calendario.md", "title": "Calendario académico"},
]
# What the fake Bedel answers to each question: the answer text and the cited documents.
ANSWERS = {
    "¿cuánto es el recargo?": ("El recargo es del 10 % del importe.", ["doc-fees"]),
    "¿cuándo empiezan las clases?": ("Las clases empiezan el 11 de enero; pagos hasta el 20.", ["doc-fees"]),
    "¿hay estacionamiento?": ("No tengo esa información.", []),
    "¿hay cafetería?": ("La cafetería abre a las 8:00.", ["doc-calendar"]),
}
CASES = [
    # A hit with both facts found.
    EvalCase(
        id="hit",
        question="¿cuánto es el recargo?",
        expected_document="colegiaturas.md",
        expected_facts=[r"10\s*%", "importe"],
    ),
    # A miss (the wrong document cited), one fact of two found, one forbidden fact said.
    EvalCase(
        id="miss",
        question="¿cuándo empiezan las clases?",
        expected_document="calendario.md",
        expected_facts=["11 de enero", "18 de enero"],
        forbidden_facts=["20", "diciembre"],
    ),
    # Nothing to cite, and nothing cited: a hit.
    EvalCase(id="null-hit", question="¿hay estacionamiento?", expected_document=None, expected_facts=["no tengo"]),
    # Nothing to cite, but a document cited: a miss.
    EvalCase(id="null-miss", question="¿hay cafetería?", expected_document=None),
]


class FakeBedel:
    """Answers /knowledge/documents, /chat and DELETE /threads like Bedel, from ANSWERS."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []
        self.deleted: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/knowledge/documents":
            return httpx.Response(200, json=DOCUMENTS)
        if request.method == "DELETE":
            self.deleted.append(request.url.path)
            return httpx.Response(204)
        body = json.loads(request.content)
        self.asked.append((body["phone"], body["question"]))
        text, cited = ANSWERS.get(body["question"], ("Claro.", []))
        titles = {d["id"]: d["title"] for d in DOCUMENTS}
        sources = [{"document_id": d, "title": titles[d], "snippet": "...", "score": 1.0} for d in cited]
        return httpx.Response(200, json={"answer": text, "thread_id": f"t-{body['phone']}", "sources": sources})


@pytest.fixture
def bedel() -> FakeBedel:
    return FakeBedel()


@pytest.fixture
async def client(bedel: FakeBedel) -> AsyncIterator[httpx.AsyncClient]:
    """Shadows the app client of conftest: run_eval talks to the fake Bedel instead."""
    async with httpx.AsyncClient(transport=httpx.MockTransport(bedel.handle), base_url="http://bedel.test") as client:
        yield client


class TestMetrics:
    async def test_hit_rate_counts_the_expected_document_among_the_sources(self, client: httpx.AsyncClient) -> None:
        report = await run_eval(client, CASES)

        assert [(r.id, r.hit) for r in report.results] == [
            ("hit", True),
            ("miss", False),
            ("null-hit", True),
            ("null-miss", False),
        ]
        assert report.hit_rate == 0.5

    async def test_fact_rate_is_facts_found_over_facts_expected(self, client: httpx.AsyncClient) -> None:
        report = await run_eval(client, CASES)

        assert [(r.facts_found, r.facts_expected) for r in report.results] == [(2, 2), (1, 2), (1, 1), (0, 0)]
        assert report.fact_rate == 0.8

    async def test_forbidden_facts_found_are_counted_and_named(self, client: httpx.AsyncClient) -> None:
        report = await run_eval(client, CASES)

        assert [r.forbidden_found for r in report.results] == [[], ["20"], [], []]
        assert report.forbidden_violations == 1

    async def test_sources_are_reported_by_file_name(self, client: httpx.AsyncClient) -> None:
        report = await run_eval(client, CASES)

        assert [r.sources for r in report.results] == [["colegiaturas.md"], ["colegiaturas.md"], [], ["calendario.md"]]

    async def test_no_expected_facts_at_all_is_a_full_fact_rate(self, client: httpx.AsyncClient) -> None:
        report = await run_eval(client, [CASES[3]])

        assert (report.cases, report.fact_rate) == (1, 1.0)


class TestConversations:
    async def test_history_is_asked_first_from_one_phone_per_case_and_the_thread_is_deleted(
        self, client: httpx.AsyncClient, bedel: FakeBedel
    ) -> None:
        cases = [
            EvalCase(id="a", question="¿y cuánto tarda?", expected_document=None, history=["¿hay estacionamiento?"]),
            EvalCase(id="b", question="¿hay estacionamiento?", expected_document=None),
        ]

        await run_eval(client, cases)

        assert bedel.asked == [
            ("+529990000000", "¿hay estacionamiento?"),
            ("+529990000000", "¿y cuánto tarda?"),
            ("+529990000001", "¿hay estacionamiento?"),
        ]
        assert bedel.deleted == ["/threads/t-+529990000000", "/threads/t-+529990000001"]


class TestReport:
    async def test_the_report_prints_the_rates_and_each_failing_case(self, client: httpx.AsyncClient) -> None:
        text = format_report(await run_eval(client, CASES))

        lines = text.splitlines()
        assert lines[:4] == [
            "cases: 4",
            "retrieval hit rate: 50.0%",
            "answer fact rate: 80.0%",
            "forbidden facts: 1",
        ]
        assert [line.split(":")[0] for line in lines[4:]] == ["- miss", "- null-miss"]


class TestCasesFile:
    def test_cases_are_read_from_jsonl_skipping_blank_lines(self, tmp_path: Path) -> None:
        path = tmp_path / "cases.jsonl"
        path.write_text(
            '{"id": "a", "question": "¿recargo?", "expected_document": "pagos.md", "expected_facts": ["10"]}\n\n',
            encoding="utf-8",
        )

        assert [(c.id, c.expected_document, c.expected_facts) for c in load_cases(path)] == [("a", "pagos.md", ["10"])]

    @pytest.mark.parametrize(
        "line",
        [
            '{"id": "a", "question": "x", "expected_document": null, "expected_facts": ["(unclosed"]}',
            '{"id": "a", "question": "x", "expected_document": null, "typo": 1}',
            '{"id": "a", "question": "x"',
        ],
    )
    def test_an_invalid_case_names_its_line(self, tmp_path: Path, line: str) -> None:
        path = tmp_path / "cases.jsonl"
        path.write_text('{"id": "ok", "question": "x", "expected_document": null}\n' + line + "\n", encoding="utf-8")

        with pytest.raises(InvalidInput, match=r"cases\.jsonl:2: not a valid case"):
            load_cases(path)
