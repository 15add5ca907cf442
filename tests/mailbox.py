"""A real local SMTP server (aiosmtpd) for the tests that send email."""

import email
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message as EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.ports import free_port


class Mailbox:
    """Keeps every message the server accepted; refuses recipients at `refused.example`."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, _: Any) -> str:
        if address.endswith("@refused.example"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


def text_of(message: EmailMessage) -> str:
    """The decoded body of a single-part message."""
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    return body.decode()


class Credentials:
    """An SMTP server's one account, for clients that sign in (AUTH over plain text: loopback only)."""

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username.encode(), password.encode()

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (self.username, self.password)
        return AuthResult(success=ok)


@contextmanager
def running_smtp_server(credentials: Credentials | None = None) -> Iterator[tuple[Mailbox, int]]:
    mailbox, port = Mailbox(), free_port()
    auth: dict[str, Any] = {} if credentials is None else {"authenticator": credentials, "auth_require_tls": False}
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **auth)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()
