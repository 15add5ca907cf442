"""Spanish analysis: what a student writes and what a document says meet on the same terms."""

from bedel.terms import analyze, fold, split_sentences


class TestFolding:
    def test_accents_and_case_are_folded(self) -> None:
        assert fold("INSCRIPCIÓN Académica Ñandú") == "inscripcion academica nandu"
        assert analyze("Inscripción") == analyze("inscripcion") == analyze("INSCRIPCION")

    def test_case_is_folded_beyond_lower_case(self) -> None:
        assert fold("STRASSE") == fold("Straße") == "strasse"


class TestTerms:
    def test_stop_words_and_chat_filler_are_dropped(self) -> None:
        assert analyze("hola, quiero saber cuándo es el de la que y los") == []

    def test_spanish_words_are_stemmed(self) -> None:
        assert analyze("certificados") == analyze("certificado")
        assert analyze("inscripciones") == analyze("inscripción")

    def test_numbers_are_kept_as_terms(self) -> None:
        assert analyze("pago del 10 % en 2027")[-2:] == ["10", "2027"]


class TestSynonyms:
    def test_student_words_meet_document_words(self) -> None:
        assert analyze("¿Cuándo empiezan las clases?") == analyze("Inicio de clases")

    def test_each_group_maps_to_its_first_word(self) -> None:
        pairs = [("multa", "recargo"), ("colegiatura", "mensualidad"), ("tarda", "plazo"), ("profe", "docente")]

        for student, document in pairs:
            assert analyze(student) == analyze(document), (student, document)

    def test_unrelated_words_stay_apart(self) -> None:
        assert analyze("recargo") != analyze("reembolso")


class TestSentences:
    def test_sentences_and_lines_are_split(self) -> None:
        text = "El pago vence el día 10. ¿Hay recargo? Sí, del 10 %.\n- Tarjeta\n| A | B |"

        assert split_sentences(text) == [
            "El pago vence el día 10.",
            "¿Hay recargo?",
            "Sí, del 10 %.",
            "- Tarjeta",
            "| A | B |",
        ]
