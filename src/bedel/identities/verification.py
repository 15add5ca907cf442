"""Linking a username-only WhatsApp user to their student record.

Business rules: until verified, an anonymous conversation gets general answers
only, and questions about personal data are answered with how to verify. The
student writes their student id, then the fact of their record the settings name
(`BEDEL_IDENTITY_VERIFICATION_FIELD`); when exactly one student matches both, the
business-scoped id is linked to that student's phone and thread. An unknown
student id and a wrong fact get the same answer, so nobody learns whether an id
exists; after `BEDEL_IDENTITY_VERIFICATION_ATTEMPTS` failures the identity waits
`BEDEL_IDENTITY_VERIFICATION_COOLDOWN_S` before it may try again, twice as long
after each further lock-out (up to a day), until it verifies.

With `BEDEL_IDENTITY_VERIFICATION_FIELD=email_code` the second fact is a one-time
code emailed to the address on the record of the student id given; the reply is
the same whether or not that id exists or has an email, and each code sent is one
attempt: a wrong or expired code, or a new student id before the code, counts
it as failed, so no more emails go out than attempts are allowed.
"""

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from bedel.channels.ports import EmailSender, SendFailed
from bedel.chat.models import Role
from bedel.chat.service import AskedQuestion
from bedel.chat.threads import append_message, has_message_from
from bedel.config import ConfigError, Settings
from bedel.db import as_utc
from bedel.identities import codes
from bedel.identities.facts import is_question, parse_date, same_fact, student_id_in
from bedel.identities.models import ChannelIdentity
from bedel.identities.repository import IdentityRepository
from bedel.phones import mask_phone
from bedel.students.fields import FieldCatalog, normalize_column
from bedel.students.models import Student
from bedel.students.repository import StudentRepository
from bedel.texts.catalog import Texts

log = structlog.get_logger()

EMAIL_CODE = "email_code"
CODE_TTL = timedelta(minutes=10)
# The longest wait, also the longest BEDEL_IDENTITY_VERIFICATION_COOLDOWN_S may set.
MAX_COOLDOWN_S = 86_400.0


@dataclass(frozen=True)
class VerificationPolicy:
    """Which fact of the record proves identity, and how many tries it gets."""

    columns: frozenset[str]  # normalised column names that hold the fact among the attributes
    own_field: Literal["email", "name"] | None  # or the record's own field the importer reads it into
    label: str
    is_date: bool
    attempts: int
    cooldown: timedelta
    by_email_code: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, catalog: FieldCatalog) -> "VerificationPolicy":
        """`BEDEL_IDENTITY_VERIFICATION_FIELD` names a concept of the field catalog or a column.

        Raises `ConfigError` when it names the student id or the phone, which prove nothing more.
        """
        name = settings.identity_verification_field
        if name == EMAIL_CODE:
            return cls(
                columns=frozenset(),
                own_field="email",
                label="código",
                is_date=False,
                attempts=settings.identity_verification_attempts,
                cooldown=timedelta(seconds=settings.identity_verification_cooldown_s),
                by_email_code=True,
            )
        concept = catalog.concept(name)
        if concept is not None:
            columns = frozenset(normalize_column(column) for column in concept.columns)
            label, is_date = concept.label, concept.kind == "date"
        else:
            columns = frozenset({normalize_column(name)})
            label, is_date = catalog.label_for(name), False
        roles = {catalog.identity_role(column) for column in columns} - {None}
        if roles & {"external_id", "phone"}:
            raise ConfigError(
                f"BEDEL_IDENTITY_VERIFICATION_FIELD: {name!r} is the student id or the phone, which the "
                "student gives anyway; name another fact of the record, such as birth_date"
            )
        return cls(
            columns=columns,
            own_field="email" if "email" in roles else "name" if "name" in roles else None,
            label=label,
            is_date=is_date,
            attempts=settings.identity_verification_attempts,
            cooldown=timedelta(seconds=settings.identity_verification_cooldown_s),
        )

    def recorded(self, student: Student) -> Any:
        if self.own_field is not None:
            return getattr(student, self.own_field)
        found = (value for column, value in student.attributes.items() if normalize_column(column) in self.columns)
        return next(found, None)


class IdentityVerifier:
    def __init__(
        self, policy: VerificationPolicy, catalog: FieldCatalog, texts: Texts, email: EmailSender | None = None
    ) -> None:
        """`email` sends the one-time codes; required when the policy verifies by email code."""
        if policy.by_email_code and email is None:
            raise ConfigError(f"BEDEL_SMTP_HOST: BEDEL_IDENTITY_VERIFICATION_FIELD={EMAIL_CODE} needs SMTP")
        self._policy = policy
        self._catalog = catalog
        self._texts = texts
        self._email = email

    async def step(
        self, session: AsyncSession, phone: str, messages: Sequence[AskedQuestion], now: datetime
    ) -> tuple[str, uuid.UUID] | None:
        """The reply to messages of an anonymous conversation, stored in its thread, when they are part
        of verifying or ask for personal data; None when they are a question for the chat flow.

        A burst's texts are read as one ("A001" then "15/03/2004"); each is stored as its own message.
        """
        identity = await IdentityRepository.from_session(session).anonymous(phone)
        if identity is None:
            return None
        reply = await self._reply(session, identity, "\n".join(m.text for m in messages).strip(), now)
        if reply is None:
            return None
        identity.invited_at = identity.invited_at or now
        for message in messages:
            # A burst's earlier texts may be stored already, by a chat turn abandoned for a newer one.
            if message.source_id and await has_message_from(session, message.source_id):
                continue
            await append_message(
                session, phone, Role.user, message.text, source_id=message.source_id, attachment=message.attachment
            )
        message_id = await append_message(session, phone, Role.assistant, reply)
        return reply, message_id

    async def invitation(self, session: AsyncSession, phone: str, now: datetime) -> str | None:
        """How to verify, told once to each anonymous conversation after its first general answer."""
        identity = await IdentityRepository.from_session(session).anonymous(phone)
        if identity is None or identity.invited_at is not None:
            return None
        identity.invited_at = now
        return self._texts.invitation

    async def _reply(self, session: AsyncSession, identity: ChannelIdentity, text: str, now: datetime) -> str | None:
        asks_personal = bool(self._catalog.concepts_in_question(text))
        student_id = student_id_in(text)
        gives_date = self._policy.is_date and parse_date(text) is not None
        if identity.locked_until is not None and as_utc(identity.locked_until) > now:
            return self._locked(identity, now) if student_id or parse_date(text) or asks_personal else None
        if self._policy.by_email_code:
            return await self._reply_by_code(session, identity, text, asks_personal, now)
        if identity.claimed_external_id is None:
            if student_id is None:
                return self._texts.ask_student_id if asks_personal else None
            identity.claimed_external_id = student_id
            # "A001 15/03/2004": the id and the date in one message.
            return await self._check(session, identity, text, now) if gives_date else self._ask_fact
        if gives_date:
            return await self._check(session, identity, text, now)
        if student_id is not None and self._policy.is_date:
            # Another student id where a date was expected: the student corrects the first one.
            identity.claimed_external_id = student_id
            return self._ask_fact
        if is_question(text):
            return self._ask_fact if asks_personal else None
        return self._texts.unreadable_date if self._policy.is_date else await self._check(session, identity, text, now)

    async def _reply_by_code(
        self, session: AsyncSession, identity: ChannelIdentity, text: str, asks_personal: bool, now: datetime
    ) -> str | None:
        code = codes.code_in(text) if identity.code_hash is not None else None
        if code is not None:
            return await self._check_code(session, identity, code, now)
        if (student_id := student_id_in(text)) is not None:
            if identity.code_hash is not None:
                # A code sent and never used counts as a try, so each try sends at most one email.
                self._clear_code(identity)
                if locked := self._fail(identity, now):
                    return locked
            return await self._send_code(session, identity, student_id, now)
        if identity.code_hash is None:
            return self._texts.ask_student_id if asks_personal else None
        if is_question(text) and not asks_personal:
            return None
        return self._texts.unreadable_code

    async def _send_code(self, session: AsyncSession, identity: ChannelIdentity, student_id: str, now: datetime) -> str:
        """Email a new code to the record of `student_id`; an unknown id, or one without an email, gets
        a code nobody receives, so what the student sees and can do next is the same."""
        assert self._email is not None
        candidates = await StudentRepository.from_session(session).find_by_external_id(student_id)
        address = self._policy.recorded(candidates[0]) if len(candidates) == 1 else None
        code = codes.new_code()
        minutes = int(CODE_TTL.total_seconds() // 60)
        if address:
            try:
                body = self._texts.code_email.format(code=code, minutes=minutes)
                await self._email.send_email(address, self._texts.code_subject, body)
            except SendFailed as exc:
                # Not the student's failure: no try counted, nothing pending.
                log.warning("identity_code_not_sent", conversation=identity.phone, temporary=exc.temporary)
                self._clear_code(identity)
                return self._texts.code_not_sent
            log.info("identity_code_sent", conversation=identity.phone)
        identity.claimed_external_id = student_id
        identity.code_hash = codes.hash_code(identity.id, code)
        identity.code_expires_at = now + CODE_TTL
        return self._texts.code_sent.format(minutes=minutes)

    async def _check_code(self, session: AsyncSession, identity: ChannelIdentity, code: str, now: datetime) -> str:
        assert identity.claimed_external_id is not None and identity.code_hash is not None
        expired = identity.code_expires_at is None or as_utc(identity.code_expires_at) <= now
        right = not expired and codes.matches(identity.id, code, identity.code_hash)
        candidates = await StudentRepository.from_session(session).find_by_external_id(identity.claimed_external_id)
        self._clear_code(identity)
        if right and len(candidates) == 1:
            return self._link(identity, candidates[0])
        return self._fail(identity, now) or (self._texts.code_expired if expired else self._texts.not_verified)

    @staticmethod
    def _clear_code(identity: ChannelIdentity) -> None:
        identity.claimed_external_id = None
        identity.code_hash = None
        identity.code_expires_at = None

    async def _check(self, session: AsyncSession, identity: ChannelIdentity, given: str, now: datetime) -> str:
        assert identity.claimed_external_id is not None
        candidates = await StudentRepository.from_session(session).find_by_external_id(identity.claimed_external_id)
        matches = [student for student in candidates if same_fact(self._policy.recorded(student), given)]
        identity.claimed_external_id = None
        if len(matches) == 1:
            return self._link(identity, matches[0])
        return self._fail(identity, now) or self._texts.not_verified

    def _fail(self, identity: ChannelIdentity, now: datetime) -> str | None:
        """Count a failed try; the lock-out reply when it locks the identity, else None."""
        identity.failed_attempts += 1
        if identity.failed_attempts % self._policy.attempts:
            return None
        # Each further lock-out doubles the wait, so guessing gets no faster by waiting it out.
        lockouts = identity.failed_attempts // self._policy.attempts
        doubled = self._policy.cooldown.total_seconds() * 2.0 ** min(lockouts - 1, 32)
        identity.locked_until = now + timedelta(seconds=min(doubled, MAX_COOLDOWN_S))
        log.warning("identity_verification_locked", conversation=identity.phone, lockouts=lockouts)
        return self._locked(identity, now)

    def _link(self, identity: ChannelIdentity, student: Student) -> str:
        log.info("identity_verified", conversation=identity.phone, phone=mask_phone(student.phone))
        identity.phone = student.phone
        identity.failed_attempts = 0
        identity.locked_until = None
        return self._texts.verified.format(name=f", {student.name}" if student.name else "")

    def _locked(self, identity: ChannelIdentity, now: datetime) -> str:
        assert identity.locked_until is not None
        minutes = max(1, math.ceil((as_utc(identity.locked_until) - now).total_seconds() / 60))
        return self._texts.locked.format(minutes=minutes)

    @property
    def _ask_fact(self) -> str:
        example = self._texts.date_example if self._policy.is_date else ""
        return self._texts.ask_fact.format(label=self._policy.label.lower(), example=example)
