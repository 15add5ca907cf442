"""The search index of one revision: ranking, relevance, persistence and vector fusion."""

import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest

from bedel.knowledge.index import Query, SearchIndex

FEES = uuid.uuid4()
CALENDAR = uuid.uuid4()
LIBRARY = uuid.uuid4()
CERTIFICATES = uuid.uuid4()
PASSAGES = [
    (FEES, "Colegiaturas y pagos", "Pagos > Recargos", "El recargo por pago tardío es del 10 % de la mensualidad."),
    (FEES, "Colegiaturas y pagos", "Pagos > Medios", "Puedes pagar con tarjeta, transferencia o en ventanilla."),
    (CALENDAR, "Calendario académico", "Semestre 2027-1", "El inicio de clases es el 11 de enero de 2027."),
    (LIBRARY, "Biblioteca", "Préstamo", "La biblioteca presta hasta cinco libros durante dos semanas."),
    (CERTIFICATES, "Constancias", "Tiempos", "La constancia de estudios se entrega en tres días hábiles."),
]


def rows(embeddings: list[list[float]] | None = None) -> list[dict[str, Any]]:
    return [
        {
            "id": number,
            "document_id": document_id,
            "title": title,
            "heading": heading,
            "text": text,
            "embedding": embeddings[number - 1] if embeddings else None,
        }
        for number, (document_id, title, heading, text) in enumerate(PASSAGES, 1)
    ]


@pytest.fixture
def index() -> SearchIndex:
    return SearchIndex.build("rev-1", rows())


class TestRanking:
    @pytest.mark.parametrize(
        ("question", "document"),
        [
            ("¿cuánto es el recargo si pago tarde?", FEES),
            ("¿cuándo empiezan las clases?", CALENDAR),
            ("¿cuántos libros me prestan en la biblioteca?", LIBRARY),
            ("¿cuánto tarda una constancia?", CERTIFICATES),
        ],
    )
    def test_the_right_passage_ranks_first(self, index: SearchIndex, question: str, document: uuid.UUID) -> None:
        found = index.search(Query.from_text(question), limit=3)

        assert found[0].document_id == str(document)
        assert found[0].score > 0
        assert [p.score for p in found] == sorted((p.score for p in found), reverse=True)

    def test_a_passage_carries_its_title_heading_and_text(self, index: SearchIndex) -> None:
        best = index.search(Query.from_text("recargo por pago tardío"), limit=1)[0]

        assert (best.chunk_id, best.title, best.heading) == (1, "Colegiaturas y pagos", "Pagos > Recargos")
        assert best.text == PASSAGES[0][3]

    def test_an_unrelated_question_finds_nothing(self, index: SearchIndex) -> None:
        assert index.search(Query.from_text("¿quién ganó el partido de futbol?"), limit=3) == []

    def test_an_empty_index_finds_nothing(self) -> None:
        assert SearchIndex.empty("rev-0").search(Query.from_text("recargo"), limit=3) == []

    def test_context_brings_a_follow_up_back_to_its_topic(self, index: SearchIndex) -> None:
        query = Query.from_text("¿y cuánto tarda?", context=["¿cómo pido una constancia de estudios?"])

        assert index.search(query, limit=1)[0].document_id == str(CERTIFICATES)


class TestCommonTerms:
    """A term most documents hold (the school's initials in every web address) says little about
    which passage answers."""

    SCHOOL: ClassVar = [uuid.uuid4() for _ in range(5)]
    PASSAGES: ClassVar = [
        (SCHOOL[0], "Colegiaturas y cuotas", "Importes", "Colegiatura: 4500 pesos al mes. Inscripción: 2800 pesos. "
         "Examen extraordinario: 700 pesos por materia."),
        (SCHOOL[0], "Colegiaturas y cuotas", "Facturas", "Registra tus datos fiscales en mi.udx.mx antes de pagar; "
         "la factura llega a tu correo el mismo día."),
        (SCHOOL[1], "Becas", "Becas", "Solicita tu beca en mi.udx.mx."),
        (SCHOOL[2], "Biblioteca", "Biblioteca", "Consulta el catálogo en biblio.udx.mx."),
        (SCHOOL[3], "Soporte", "Soporte", "Escribe a soporte@udx.mx."),
        (SCHOOL[4], "Calendario", "Calendario", "Las clases de la UDX inician el 9 de agosto."),
    ]  # fmt: skip

    def school(self) -> SearchIndex:
        return SearchIndex.build(
            "rev-school",
            [
                {"id": number, "document_id": document, "title": title, "heading": f"{title} > {heading}",
                 "text": text, "embedding": None}
                for number, (document, title, heading, text) in enumerate(self.PASSAGES, 1)
            ],
        )  # fmt: skip

    def test_the_schools_initials_do_not_outweigh_the_topic(self) -> None:
        found = self.school().search(Query.from_text("Me interesa la UDX, ¿cuánto es la colegiatura?"), limit=2)

        assert [passage.heading for passage in found] == [
            "Colegiaturas y cuotas > Importes",
            "Colegiaturas y cuotas > Facturas",
        ]

    def test_a_common_term_alone_still_finds_its_passages(self) -> None:
        assert len(self.school().search(Query.from_text("UDX"), limit=10)) == 5


class TestRelevance:
    def test_relevance_is_high_for_a_matching_question(self, index: SearchIndex) -> None:
        best = index.search(Query.from_text("recargo por pago tardío de la mensualidad"), limit=1)[0]

        assert best.relevance >= 0.9

    def test_relevance_is_low_when_only_a_minor_word_matches(self, index: SearchIndex) -> None:
        found = index.search(Query.from_text("biblioteca futbol estadio campeonato"), limit=5)

        assert [p.document_id for p in found] == [str(LIBRARY)]
        assert 0 < found[0].relevance < 0.5

    def test_relevance_is_zero_for_an_unrelated_question(self) -> None:
        vectors = [[1.0 if i == n else 0.0 for i in range(len(PASSAGES))] for n in range(len(PASSAGES))]
        index = SearchIndex.build("rev-v", rows(vectors))

        found = index.search(Query.from_text("¿quién ganó el partido de futbol?", vector=[1.0] * 5), limit=5)

        assert len(found) == len(PASSAGES)
        assert {p.relevance for p in found} == {0.0}


class TestSpelling:
    @pytest.mark.parametrize(
        ("question", "document"),
        [("costancia de estudios", CERTIFICATES), ("colegiatrua", FEES)],
    )
    def test_a_misspelt_word_finds_its_passage(self, index: SearchIndex, question: str, document: uuid.UUID) -> None:
        found = index.search(Query.from_text(question), limit=1)

        assert [p.document_id for p in found] == [str(document)]
        assert found[0].relevance == 1.0

    def test_whatsapp_shortcuts_are_spelt_out_before_the_search(self, index: SearchIndex) -> None:
        found = index.search(Query.from_text("q recargo hay x pagar tarde"), limit=1)

        assert [p.document_id for p in found] == [str(FEES)]
        assert found[0].relevance == 1.0


class TestPersistence:
    def test_save_then_load_gives_the_same_results(self, index: SearchIndex, tmp_path: Path) -> None:
        index.save(tmp_path)

        loaded = SearchIndex.load(tmp_path, "rev-1")

        assert loaded is not None
        assert loaded.revision == "rev-1"
        assert loaded.size == index.size == len(PASSAGES)
        for question in ("recargo por pago tarde", "inicio de clases", "constancia de estudios"):
            assert loaded.search(Query.from_text(question), 3) == index.search(Query.from_text(question), 3)

    def test_a_revision_never_saved_loads_as_none(self, index: SearchIndex, tmp_path: Path) -> None:
        index.save(tmp_path)

        assert SearchIndex.load(tmp_path, "rev-2") is None
        assert SearchIndex.load(tmp_path / "nowhere", "rev-1") is None

    def test_vectors_survive_save_and_load(self, tmp_path: Path) -> None:
        vectors = [[1.0 if i == n else 0.0 for i in range(len(PASSAGES))] for n in range(len(PASSAGES))]
        SearchIndex.build("rev-v", rows(vectors)).save(tmp_path)

        loaded = SearchIndex.load(tmp_path, "rev-v")

        assert loaded is not None
        found = loaded.search(Query(question=[], context=[], vector=vectors[3]), limit=1)
        assert found[0].document_id == str(LIBRARY)


class TestFusion:
    def test_a_matching_vector_brings_up_a_passage_that_shares_no_word(self) -> None:
        vectors = [[1.0 if i == n else 0.0 for i in range(len(PASSAGES))] for n in range(len(PASSAGES))]
        index = SearchIndex.build("rev-v", rows(vectors))
        # "vacaciones" is in no passage; the question's vector points at the library's.
        question = "¿en vacaciones puedo sacar novelas?"

        lexical = index.search(Query.from_text(question), limit=3)
        fused = index.search(Query.from_text(question, vector=[0.0, 0.1, 0.0, 0.9, 0.0]), limit=3)

        assert lexical == []
        assert fused[0].document_id == str(LIBRARY)
        assert fused[0].relevance == 0.0

    def test_a_vector_of_another_size_falls_back_to_bm25(self) -> None:
        vectors = [[1.0 if i == n else 0.0 for i in range(len(PASSAGES))] for n in range(len(PASSAGES))]
        index = SearchIndex.build("rev-v", rows(vectors))

        found = index.search(Query.from_text("recargo por pago tarde", vector=[1.0, 0.0]), limit=1)

        assert found[0].document_id == str(FEES)


class TestSavingFolder:
    def test_an_unwritable_folder_is_reported_not_hidden(self, index: SearchIndex, tmp_path: Path) -> None:
        blocked = tmp_path / "not-a-folder"
        blocked.write_text("a file where the index folder should be")

        assert index.save(blocked) is False
        assert SearchIndex.load(blocked, "rev-1") is None
