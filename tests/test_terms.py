"""Spanish analysis: what a student writes and what a document says meet on the same terms."""

from bedel.terms import (
    analyze,
    english_words,
    fold,
    is_english,
    nearest,
    spell_out,
    spellings,
    split_sentences,
    to_spanish,
)


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

    def test_wanting_to_get_in_is_filler(self) -> None:
        assert analyze("me interesa entrar al portal") == analyze("portal")

    def test_numbers_are_kept_as_terms(self) -> None:
        assert analyze("pago del 10 % en 2027")[-2:] == ["10", "2027"]


class TestSynonyms:
    def test_student_words_meet_document_words(self) -> None:
        assert analyze("¿Cuándo empiezan las clases?") == analyze("Inicio de clases")

    def test_a_synonym_that_is_a_stop_word_elsewhere_is_kept(self) -> None:
        assert analyze("olvidé mi contra") == analyze("olvidé mi contraseña")

    def test_each_group_maps_to_its_first_word(self) -> None:
        pairs = [
            ("multa", "recargo"),
            ("colegiatura", "mensualidad"),
            ("tarda", "plazo"),
            ("profe", "docente"),
            ("abierto", "horario"),
            ("conmutador", "teléfono"),
            ("inscribirse", "inscripción"),
            ("ubicados", "Blvd"),
            ("vencido", "atraso"),
            ("pierde", "perder"),
        ]

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

    def test_abbreviations_and_initials_do_not_end_a_sentence(self) -> None:
        text = "Centro de Estudios, A.C. Blvd. Campestre 2850, León. Conmutador: 477 712 3400."

        assert split_sentences(text) == [
            "Centro de Estudios, A.C. Blvd. Campestre 2850, León.",
            "Conmutador: 477 712 3400.",
        ]


class TestShortcuts:
    def test_whatsapp_shortcuts_are_spelt_out(self) -> None:
        assert spell_out("q onda, cuanto sale la inscripcion x fa") == "que onda cuanto cuesta la inscripcion por favor"

    def test_a_shortcut_inside_a_word_is_left_alone(self) -> None:
        assert spell_out("Edificio D, xochimilco") == "edificio de xochimilco"
        assert spell_out("quinta") == "quinta"

    def test_what_happens_and_going_past_a_date_are_not_passing(self) -> None:
        [passing] = analyze("aprobar")

        assert passing not in analyze(spell_out("q pasa si me paso de la fecha de pago"))
        assert analyze(spell_out("me paso de la fecha")) == analyze("me atraso de la fecha")
        assert passing in analyze(spell_out("con cuanto paso la materia"))

    def test_documents_keep_their_letters(self) -> None:
        assert analyze("Edificio D") == ["edifici", "d"]


class TestEnglish:
    def test_english_questions_are_told_from_spanish_ones(self) -> None:
        assert is_english("How much is the enrollment fee?")
        assert is_english("Hi!")
        assert not is_english("Hola, necesito ayuda.")
        assert not is_english("cuanto es la colegiatrua x mes??")
        assert not is_english("ok")

    def test_school_words_are_carried_into_spanish(self) -> None:
        assert to_spanish("How much is the enrollment fee?") == "cuanto cuota inscripcion"
        assert to_spanish("When is spring break?") == "cuando vacaciones primavera semana santa"

    def test_words_the_vocabulary_lacks_stay_as_written(self) -> None:
        assert to_spanish("Do I need a student visa?") == "alumno visa"
        assert english_words("Do I need a student visa?") == "student visa"


class TestSpelling:
    def test_a_long_misspelt_term_finds_the_nearest_known_one(self) -> None:
        known = spellings(analyze("inscripción reinscripción constancia"))
        [inscription] = analyze("inscripción")

        assert nearest(analyze("inscripsion")[0], known, list(known)) == [inscription]

    def test_a_misspelt_synonym_finds_its_group(self) -> None:
        known = spellings(analyze("mensualidad"))

        assert nearest(analyze("colegiatrua")[0], known, list(known)) == analyze("mensualidad")

    def test_short_terms_are_never_corrected(self) -> None:
        known = spellings(analyze("estudio"))

        assert nearest(analyze("estadio")[0], known, list(known)) == []
