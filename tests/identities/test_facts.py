from datetime import date

import pytest

from bedel.identities.facts import parse_date, same_fact, student_id_in


class TestParseDate:
    @pytest.mark.parametrize(
        "text",
        [
            "15/03/2004",
            "15-03-2004",
            "15.3.2004",
            "2004-03-15",
            "15 de marzo de 2004",
            "15 Marzo 2004",
            "nací el 15/03/2004",
        ],
    )
    def test_reads_the_ways_students_write_a_date(self, text: str) -> None:
        assert parse_date(text) == date(2004, 3, 15)

    @pytest.mark.parametrize("text", ["31/02/2004", "marzo", "15/03", "A001", ""])
    def test_what_is_not_a_date_is_none(self, text: str) -> None:
        assert parse_date(text) is None


class TestStudentIdIn:
    @pytest.mark.parametrize(
        ("text", "found"),
        [("A01230002", "A01230002"), (" a01230002 ", "a01230002"), ("mi matrícula es A01230002.", "A01230002")],
    )
    def test_finds_the_id_in_a_short_message(self, text: str, found: str) -> None:
        assert student_id_in(text) == found

    @pytest.mark.parametrize(
        "text",
        [
            "hola",
            "¿cuánto debo del 2024?",
            "15/03/2004",
            "A001 y A002",
            "quiero saber cuándo empiezan las clases del semestre 2027 por favor",
        ],
    )
    def test_a_question_a_date_or_two_ids_are_no_claim(self, text: str) -> None:
        assert student_id_in(text) is None


class TestSameFact:
    def test_dates_compare_as_dates(self) -> None:
        assert same_fact("2004-03-15", "15/03/2004")
        assert not same_fact("2004-03-15", "16/03/2004")

    def test_other_facts_ignore_case_accents_and_spacing(self) -> None:
        assert same_fact("Ingeniería Civil", "ingenieria  civil")
        assert not same_fact("Ingeniería Civil", "Ingeniería")

    @pytest.mark.parametrize(("recorded", "given"), [(None, "15/03/2004"), ("", ""), ("2004-03-15", "marzo")])
    def test_nothing_matches_an_empty_fact(self, recorded: object, given: str) -> None:
        assert not same_fact(recorded, given)
