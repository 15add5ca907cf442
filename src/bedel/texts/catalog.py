"""What students read from Bedel itself, not from the model, in each language Bedel speaks.

Each language is a TOML file next to this module that gives every field of `Texts`,
read once when the module is imported: a file that lacks a sentence, or names one
`Texts` does not have, fails at start-up (and in the tests), never in a student's
conversation. `{name}` fields are filled in with `str.format`.
"""

import tomllib
from dataclasses import dataclass
from importlib import resources

DEFAULT_LANGUAGE = "es"


@dataclass(frozen=True)
class Texts:
    # The chat engine's own sentences (chat/service.py).
    handoff_offer: str
    handoff_notice: str
    budget_student: str
    budget_institution: str
    # What stands in an answer for another student's phone, email, matrícula, CURP or name (chat/guard.py).
    withheld: str
    # Replies and labels over the channels (channels/).
    only_text: str
    unavailable: str
    unavailable_offer: str
    unsubscribed: str
    subscribed: str
    not_helpful: str
    handoff_declined: str
    voice_note: str
    file_kept: str
    file_refused: str
    feedback_question: str
    handoff_question: str
    yes: str
    no: str
    email_subject: str
    privacy_notice: str
    # Confirming who writes from a username-only account (identities/verification.py).
    invitation: str
    ask_student_id: str
    ask_fact: str
    date_example: str
    unreadable_date: str
    not_verified: str
    locked: str
    verified: str
    code_sent: str
    unreadable_code: str
    code_expired: str
    code_not_sent: str
    code_subject: str
    code_email: str
    # The offline engine's answers (llm/offline.py, llm/extractive.py).
    hello: str
    hello_name: str
    offer_without_record: str
    offer_with_record: str
    record_topics: str
    no_record: str
    unknown_answer: str
    missing_field: str
    missing_one: str
    missing_many: str
    record_says: str
    passage_says: str


def _load(language: str) -> Texts:
    name = f"{language}.toml"
    entries = tomllib.loads(resources.files("bedel.texts").joinpath(name).read_text("utf-8"))
    try:
        return Texts(**entries)
    except TypeError as exc:
        raise TypeError(f"bedel/texts/{name}: {exc}") from None


CATALOGUE = {language: _load(language) for language in ("es", "en")}


def texts_for(language: str) -> Texts:
    """The texts in `language` ("en", "en-US"); Spanish for a language without a catalogue,
    while the model may still answer in it (BEDEL_LANGUAGE=pt)."""
    primary = language.lower().replace("_", "-").partition("-")[0]
    return CATALOGUE.get(primary, CATALOGUE[DEFAULT_LANGUAGE])
