"""Reply buttons for the common moments: "¿Te sirvió esta respuesta?" under an answer, and confirming a handoff.

A button's id carries what it is about (`feedback:yes:<answer id>`,
`handoff:no:<thread id>`), so a tap needs no state kept in between.
"""

import uuid
from dataclasses import dataclass

from bedel.channels.ports import Button
from bedel.texts.catalog import Texts


@dataclass(frozen=True)
class Tap:
    kind: str  # "feedback" or "handoff"
    yes: bool
    target: uuid.UUID  # the answer (feedback) or the thread (handoff)


def answer_buttons(
    thread_id: uuid.UUID, message_id: uuid.UUID, texts: Texts, *, handoff_offered: bool
) -> tuple[tuple[Button, ...], str]:
    """The buttons under an answer and their question: confirm a handoff the model offered, or rate the answer."""
    if handoff_offered:
        return handoff_buttons(thread_id, texts)
    return _yes_no("feedback", message_id, texts), texts.feedback_question


def handoff_buttons(thread_id: uuid.UUID, texts: Texts) -> tuple[tuple[Button, ...], str]:
    """ "¿Quieres que te atienda una persona?" with yes and no, for the conversation `thread_id`."""
    return _yes_no("handoff", thread_id, texts), texts.handoff_question


def _yes_no(kind: str, target: uuid.UUID, texts: Texts) -> tuple[Button, ...]:
    return Button(f"{kind}:yes:{target}", texts.yes), Button(f"{kind}:no:{target}", texts.no)


def read_tap(button_id: str) -> Tap | None:
    """The tap a button id stands for; None for an id Bedel did not make."""
    kind, _, rest = button_id.partition(":")
    answer, _, target = rest.partition(":")
    if kind not in ("feedback", "handoff") or answer not in ("yes", "no"):
        return None
    try:
        return Tap(kind, answer == "yes", uuid.UUID(target))
    except ValueError:
        return None
