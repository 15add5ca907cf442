"""The console's words in each language, read once from catalogue.toml."""

import tomllib
from collections.abc import Mapping
from enum import StrEnum
from functools import cache
from pathlib import Path
from types import MappingProxyType


class Language(StrEnum):
    es = "es"  # the default: the console is Spanish first
    en = "en"


@cache
def strings(language: Language) -> Mapping[str, str]:
    catalogue = tomllib.loads(Path(__file__).with_name("catalogue.toml").read_text(encoding="utf-8"))
    return MappingProxyType(catalogue[language.value])
