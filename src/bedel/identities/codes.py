"""One-time codes sent to the email on a student's record: made, hashed, read back."""

import hashlib
import hmac
import re
import secrets
import uuid

CODE_DIGITS = 6
_CODE = re.compile(rf"(?<!\d)\d{{{CODE_DIGITS}}}(?!\d)")


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def hash_code(identity_id: uuid.UUID, code: str) -> str:
    """The code as stored, bound to the identity's row so a hash copied to another row matches nothing.

    Six digits hash to a million values, so the hash keeps the code out of logs and
    backups, not from someone holding the database; the expiry and the attempt limit
    are what protect a code.
    """
    return hmac.new(identity_id.bytes, code.encode(), hashlib.sha256).hexdigest()


def matches(identity_id: uuid.UUID, code: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_code(identity_id, code), stored_hash)


def code_in(text: str) -> str | None:
    """The one code a message gives ("482913", "es 482 913" is not one), or None."""
    found = _CODE.findall(text)
    return found[0] if len(found) == 1 else None
