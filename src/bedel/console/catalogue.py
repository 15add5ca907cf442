"""The console's words in each language, read once from the files in words/: one per page
(and base.toml for what every page shares), so pages add words without touching each other's."""

import tomllib
from collections.abc import Mapping
from enum import StrEnum
from functools import cache
from pathlib import Path
from types import MappingProxyType

WORDS_DIR = Path(__file__).with_name("words")


class Language(StrEnum):
    es = "es"  # the default: the console is Spanish first
    en = "en"


@cache
def strings(language: Language) -> Mapping[str, str]:
    """Every file's table for the language, as one; a word defined in two files is a mistake
    that would show one page another's text, so it fails here (and in the tests)."""
    words: dict[str, str] = {}
    for path in sorted(WORDS_DIR.glob("*.toml")):
        table = tomllib.loads(path.read_text(encoding="utf-8"))[language.value]
        twice = words.keys() & table.keys()
        if twice:
            raise ValueError(f"{path.name} defines words another file already has: {sorted(twice)}")
        words |= table
    return MappingProxyType(words)
