"""Consent to bulk messages: a student stops campaigns with "BAJA" and has them again with "ALTA".

Business rules: the word is the whole message, in any case, with or without
accents and punctuation; consent belongs to the phone (the `opt_outs` table) and
is checked when a campaign is created and again when each batch is sent; it
only concerns campaigns, so the student's own questions are still answered.
"""

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from bedel.consent.repository import ConsentRepository
from bedel.terms import fold

_OPT_OUT_WORDS = frozenset({"baja", "stop", "alto", "cancelar suscripcion", "unsubscribe"})
_OPT_IN_WORDS = frozenset({"alta", "start", "unstop"})


def subscription_request(text: str | None) -> bool | None:
    """False for "BAJA"/"STOP", True for "ALTA"/"START", None for anything else."""
    if text is None:
        return None
    words = " ".join(fold(text).strip(" .!¡¿?\n\t").split())
    if words in _OPT_OUT_WORDS:
        return False
    if words in _OPT_IN_WORDS:
        return True
    return None


async def set_subscription(session: AsyncSession, phone: str, subscribed: bool) -> None:
    repository = ConsentRepository.from_session(session)
    await (repository.opt_in(phone) if subscribed else repository.opt_out(phone))


async def opted_out_phones(session: AsyncSession, phones: Sequence[str] | None = None) -> set[str]:
    """The phones (of `phones`, or all) that want no campaigns."""
    return await ConsentRepository.from_session(session).opted_out(phones)
