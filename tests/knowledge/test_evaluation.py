"""`bedel eval`'s metrics, computed on hand-made cases against a Bedel whose answers the test decides,
and bench/eval/run.py on a tiny institution against the real one."""

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bedel.errors import InvalidInput
from bedel.knowledge.evaluation import EvalCase, Kind, format_report, load_cases, run_eval

ROOT = Path(__file__).resolve().parents[2]

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
    "¿cuánto debo?": ("Saldo pendiente: $4,500.00", []),
    "hola": ("¡Hola, Ana! ¿En qué te ayudo?", []),
    "quiero hablar con una persona": ("Te atiende una persona en breve.", []),
    "pásame con alguien": ("Claro, te comunico.", ["doc-fees"]),
    "¿dónde queda rectoría?": ("Te atiende una persona en breve.", ["doc-calendar"]),
}
# Questions the fake Bedel answers by handing the conversation to a person.
HANDOFFS = {"quiero hablar con una persona", "¿dónde queda rectoría?"}
# Phones on the fake Bedel's student list.
STUDENTS = {"+52 55 1234 5678"}
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
        if request.url.path.startswith("/students/"):
            phone = request.url.path.removeprefix("/students/")
            return httpx.Response(200 if phone in STUDENTS else 404, json={})
        if request.method == "DELETE":
            self.deleted.append(request.url.path)
            return httpx.Response(204)
        body = json.loads(request.content)
        self.asked.append((body["phone"], body["question"]))
        text, cited = ANSWERS.get(body["question"], ("Claro.", []))
        titles = {d["id"]: d["title"] for d in DOCUMENTS}
        sources = [{"document_id": d, "title": titles[d], "snippet": "...", "score": 1.0} for d in cited]
        answer = {"answer": text, "thread_id": f"t-{body['phone']}", "sources": sources}
        return httpx.Response(200, json=answer | {"handoff": body["question"] in HANDOFFS})


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
        assert [line.split(":")[0] for line in lines if line.startswith("- ")] == [
            "- miss (document)",
            "- null-miss (unanswerable)",
        ]


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


def case(id: str, kind: Kind, question: str, **fields: object) -> EvalCase:
    return EvalCase.model_validate({"id": id, "kind": kind, "question": question, "expected_document": None} | fields)


class TestCaseFields:
    def test_a_case_without_a_kind_is_about_its_document_or_about_none(self, tmp_path: Path) -> None:
        path = tmp_path / "cases.jsonl"
        path.write_text(
            '{"id": "a", "question": "¿recargo?", "expected_document": "pagos.md"}\n'
            '{"id": "b", "question": "¿estacionamiento?", "expected_document": null}\n',
            encoding="utf-8",
        )

        assert [c.kind for c in load_cases(path)] == [Kind.document, Kind.unanswerable]

    def test_kind_student_and_expected_handoff_are_read(self, tmp_path: Path) -> None:
        path = tmp_path / "cases.jsonl"
        path.write_text(
            '{"id": "a", "kind": "handoff", "student": "+52 55 1234 5678", "question": "pásame con alguien",'
            ' "expected_document": null, "expect_handoff": true}\n',
            encoding="utf-8",
        )

        [read] = load_cases(path)

        assert (read.kind, read.student, read.expect_handoff) == (Kind.handoff, "+52 55 1234 5678", True)

    def test_an_unknown_kind_names_its_line(self, tmp_path: Path) -> None:
        path = tmp_path / "cases.jsonl"
        path.write_text('{"id": "a", "kind": "gossip", "question": "x", "expected_document": null}\n', encoding="utf-8")

        with pytest.raises(InvalidInput, match=r"cases\.jsonl:1: not a valid case"):
            load_cases(path)

    async def test_a_case_with_a_student_asks_from_that_students_phone(
        self, client: httpx.AsyncClient, bedel: FakeBedel
    ) -> None:
        cases = [
            case("mine", Kind.record, "¿cuánto debo?", student="+52 55 1234 5678"),
            case("anyone", Kind.document, "¿hay estacionamiento?"),
        ]

        await run_eval(client, cases)

        assert bedel.asked == [("+52 55 1234 5678", "¿cuánto debo?"), ("+529990000001", "¿hay estacionamiento?")]

    async def test_a_student_not_on_the_list_stops_the_run_before_any_question(
        self, client: httpx.AsyncClient, bedel: FakeBedel
    ) -> None:
        cases = [case("typo", Kind.record, "¿cuánto debo?", student="+52 55 1234 0000")]

        with pytest.raises(InvalidInput, match=r"\+52 55 1234 0000"):
            await run_eval(client, cases)
        assert bedel.asked == []


class TestKinds:
    async def test_each_kind_is_counted_on_its_own_and_in_the_totals(self, client: httpx.AsyncClient) -> None:
        report = await run_eval(client, [*CASES, case("debt", Kind.record, "¿cuánto debo?", expected_facts=["4,500"])])

        assert {
            kind: (t.cases, t.hits, t.hits_measured, t.facts_found, t.facts_expected)
            for kind, t in report.kinds.items()
        } == {
            Kind.document: (2, 1, 2, 3, 4),
            Kind.unanswerable: (2, 1, 2, 1, 1),
            Kind.record: (1, 0, 0, 1, 1),
        }
        assert (report.total.cases, report.total.facts_found, report.total.facts_expected) == (5, 5, 6)

    async def test_retrieval_is_not_measured_on_a_record_answer_without_a_document(
        self, client: httpx.AsyncClient
    ) -> None:
        report = await run_eval(client, [case("debt", Kind.record, "¿cuánto debo?"), CASES[0]])

        assert [r.hit for r in report.results] == [None, True]
        assert report.hit_rate == 1.0

    @pytest.mark.parametrize("kind", [Kind.greeting, Kind.handoff, Kind.unanswerable])
    async def test_a_passage_cited_where_none_answers_is_a_retrieval_miss(
        self, client: httpx.AsyncClient, kind: Kind
    ) -> None:
        report = await run_eval(client, [case("hi", kind, "hola"), case("cited", kind, "pásame con alguien")])

        assert [r.hit for r in report.results] == [True, False]

    async def test_handoffs_recognised_and_handoffs_nobody_asked_for(self, client: httpx.AsyncClient) -> None:
        cases = [
            case("asked", Kind.handoff, "quiero hablar con una persona", expect_handoff=True),
            case("missed", Kind.handoff, "pásame con alguien", expect_handoff=True),
            case("unasked", Kind.document, "¿dónde queda rectoría?", expected_document="calendario.md"),
        ]

        report = await run_eval(client, cases)

        assert [(r.handoff, r.missed) for r in report.results] == [(True, False), (False, True), (True, True)]
        assert (report.handoff_rate, report.total.unwanted_handoffs) == (0.5, 1)
        assert report.kinds[Kind.handoff].handoffs_recognised == 1

    async def test_an_unknown_number_is_answered_with_the_document_every_fact_and_no_forbidden_one(
        self, client: httpx.AsyncClient
    ) -> None:
        fees = {"expected_document": "colegiaturas.md"}
        cases = [
            case("right", Kind.unknown_number, "¿cuánto es el recargo?", **fees, expected_facts=["10 %"]),
            case(
                "a fact short", Kind.unknown_number, "¿cuánto es el recargo?", **fees, expected_facts=["10 %", "20 %"]
            ),
            case("forbidden", Kind.unknown_number, "¿cuánto es el recargo?", **fees, forbidden_facts=["importe"]),
            case("wrong document", Kind.unknown_number, "¿hay cafetería?", **fees),
            # Personal data asked from an unknown number: not an answer from the documents, not counted.
            case("personal", Kind.unknown_number, "¿cuánto debo?"),
        ]

        report = await run_eval(client, cases)

        assert (report.total.unknown_answered, report.total.unknown_asked, report.unknown_answered_rate) == (1, 4, 0.25)

    async def test_the_report_has_a_row_for_each_kind_and_the_totals(self, client: httpx.AsyncClient) -> None:
        cases = [*CASES, case("asked", Kind.handoff, "quiero hablar con una persona", expect_handoff=True)]

        lines = format_report(await run_eval(client, cases)).splitlines()

        assert lines[4:7] == [
            "handoffs recognised: 100.0% (1/1)",
            "handoffs nobody asked for: 0",
            "unknown numbers answered from documents: –",
        ]
        rows = [line for line in lines if line.startswith("| ") and not line.startswith("| kind")]
        assert rows == [
            "| document | 2 | 50.0% (1/2) | 75.0% (3/4) | 1 | – | 0 |",
            "| handoff | 1 | 100.0% (1/1) | – | 0 | 100.0% (1/1) | 0 |",
            "| unanswerable | 2 | 50.0% (1/2) | 100.0% (1/1) | 0 | – | 0 |",
            "| all | 5 | 60.0% (3/5) | 80.0% (4/5) | 1 | 100.0% (1/1) | 0 |",
        ]


TINY_DOCUMENT = """# Cuotas 2027

## Reinscripción

La reinscripción semestral cuesta $3,200.00 MXN y se paga antes del 8 de enero.
"""
TINY_STUDENTS = """matricula,nombre,celular,adeudo
A001,Ana Ruiz,55 1234 5678,4500.00
A002,Luis Mora,55 8765 4321,0
"""
TINY_CASES = [
    {
        "id": "fee",
        "kind": "document",
        "question": "¿Cuánto cuesta la reinscripción semestral?",
        "expected_document": "cuotas.md",
        "expected_facts": ["3,200"],
    },
    {
        "id": "debt",
        "kind": "record",
        "student": "55 1234 5678",
        "question": "¿Cuánto debo?",
        "expected_document": None,
        "expected_facts": ["4,500"],
    },
    {
        "id": "person",
        "kind": "handoff",
        "question": "quiero hablar con una persona",
        "expected_document": None,
        "expect_handoff": True,
    },
]


class TestInstitutionRunner:
    def test_each_institution_is_loaded_on_its_own_and_reported_by_kind(self, tmp_path: Path) -> None:
        tiny = tmp_path / "institutions" / "tiny"
        (tiny / "documents").mkdir(parents=True)
        (tiny / "documents" / "cuotas.md").write_text(TINY_DOCUMENT, encoding="utf-8")
        (tiny / "students.csv").write_text(TINY_STUDENTS, encoding="utf-8")
        (tiny / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in TINY_CASES), encoding="utf-8")
        results = tmp_path / "RESULTS.md"

        runner = [sys.executable, str(ROOT / "bench" / "eval" / "run.py")]
        done = subprocess.run(
            [*runner, "--institutions", str(tiny.parent), "--results", str(results)],
            capture_output=True,
            text=True,
            timeout=300,
        )

        assert done.returncode == 0, done.stderr
        page = results.read_text(encoding="utf-8")
        assert "| measure | target | tiny |" in page
        assert "| handoffs recognised | 100 % | 1/1 met |" in page
        assert "- students.csv: 2 created, 0 updated, 0 rows not loaded" in page
        assert "- 1 added, 0 replaced, 0 unchanged, 0 failed" in page
        assert "| document | 1 | 100.0% (1/1) | 100.0% (1/1) | 0 | – | 0 |" in page
        assert "| record | 1 | – | 100.0% (1/1) | 0 | – | 0 |" in page
        assert "| handoff | 1 | 100.0% (1/1) | – | 0 | 100.0% (1/1) | 0 |" in page
