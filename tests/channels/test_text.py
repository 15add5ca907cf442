from hypothesis import given
from hypothesis import strategies as st

from bedel.channels.text import split_message


class TestSplitMessage:
    def test_a_short_text_is_one_part(self) -> None:
        assert split_message("Hola. ¿Qué tal?", 100) == ["Hola. ¿Qué tal?"]

    def test_parts_end_between_sentences(self) -> None:
        text = "Primera oración. Segunda oración! Tercera oración? Cuarta…"

        assert split_message(text, 35) == ["Primera oración. Segunda oración!", "Tercera oración? Cuarta…"]

    def test_a_sentence_longer_than_the_limit_is_cut_between_words(self) -> None:
        assert split_message("uno dos tres cuatro cinco", 9) == ["uno dos", "tres", "cuatro", "cinco"]

    def test_a_word_longer_than_the_limit_is_cut_where_it_must(self) -> None:
        assert split_message("https://example.edu/aaaaaaaa", 10) == ["https://ex", "ample.edu/", "aaaaaaaa"]

    @given(st.text(alphabet="ab .!?\n", min_size=1, max_size=400), st.integers(min_value=5, max_value=60))
    def test_no_part_exceeds_the_limit_and_no_word_is_lost(self, text: str, limit: int) -> None:
        parts = split_message(text, limit)

        assert all(0 < len(part) <= limit for part in parts)
        assert "".join("".join(parts).split()) == "".join(text.split())
