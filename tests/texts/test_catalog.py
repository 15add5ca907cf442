"""The catalogue of what students read: every language says everything, with the same blanks to fill in."""

from dataclasses import asdict, fields
from string import Formatter

import pytest

from bedel.texts.catalog import CATALOGUE, Texts, texts_for


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(text) if name is not None}


class TestCompleteness:
    @pytest.mark.parametrize("language", ["es", "en"])
    def test_every_language_gives_every_text(self, language: str) -> None:
        texts = asdict(CATALOGUE[language])

        assert set(texts) == {field.name for field in fields(Texts)}
        assert all(isinstance(text, str) and text.strip() for text in texts.values())

    @pytest.mark.parametrize("key", [field.name for field in fields(Texts)])
    def test_english_fills_in_the_same_blanks_as_spanish(self, key: str) -> None:
        spanish, english = getattr(CATALOGUE["es"], key), getattr(CATALOGUE["en"], key)

        assert placeholders(english) == placeholders(spanish)


class TestLanguageChoice:
    @pytest.mark.parametrize("language", ["en", "EN", "en-US", "en_GB"])
    def test_english_in_any_regional_spelling_is_english(self, language: str) -> None:
        assert texts_for(language) is CATALOGUE["en"]

    def test_a_language_without_a_catalogue_gets_spanish(self) -> None:
        assert texts_for("pt") is CATALOGUE["es"]
