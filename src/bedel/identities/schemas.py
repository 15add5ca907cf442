from typing import NamedTuple

from bedel.identities.models import IdentityKind


class Identity(NamedTuple):
    """One identifier a vendor gave for the sender of a message."""

    kind: IdentityKind
    value: str
