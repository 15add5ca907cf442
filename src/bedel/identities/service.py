"""Who is writing: every vendor identifier of a person maps to one conversation key.

Business rules: the key is the student's canonical phone whenever a message
carries a phone, and every identifier that came with it (raw wa_id,
business-scoped id, Twilio From) is linked to that phone. A message with only a
business-scoped id goes to the conversation that id was linked to, or else to an
anonymous key derived from it, which no student record can match, so nothing
personal is rendered until the student verifies (see `verification`).
"""

import hashlib
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from bedel.identities.models import IdentityKind
from bedel.identities.repository import IdentityRepository
from bedel.identities.schemas import Identity

# Canonical phones start with "+"; this prefix never does, and the key fits where a phone does (16 characters).
_ANONYMOUS_PREFIX = "~"
_ANONYMOUS_HASH_CHARS = 15


def anonymous_key(business_scoped_id: str) -> str:
    """The conversation key of a business-scoped id that is linked to no phone."""
    digest = hashlib.sha256(business_scoped_id.encode()).hexdigest()
    return _ANONYMOUS_PREFIX + digest[:_ANONYMOUS_HASH_CHARS]


def is_anonymous(phone: str) -> bool:
    return phone.startswith(_ANONYMOUS_PREFIX)


async def identify(session: AsyncSession, phone: str, identities: Sequence[Identity]) -> str:
    """The conversation key of a message's sender; remembers every identifier the message carried.

    `phone` is the canonical phone the message carried, or the anonymous key of
    its business-scoped id when it carried none.
    """
    repository = IdentityRepository.from_session(session)
    if not is_anonymous(phone):
        for identity in identities:
            await repository.link(identity.kind, identity.value, phone)
        return phone
    business_scoped_id = next(identity.value for identity in identities if identity.kind == IdentityKind.bsuid)
    return await repository.claim(IdentityKind.bsuid, business_scoped_id, phone)


async def current_key(session: AsyncSession, phone: str, address: str) -> str:
    """The key a queued message is answered under: an anonymous one verified since then is the student's phone.

    `address` is where the message asked to be answered: for an anonymous key, its business-scoped id.
    """
    if not is_anonymous(phone):
        return phone
    return await IdentityRepository.from_session(session).phone_of(IdentityKind.bsuid, address) or phone
