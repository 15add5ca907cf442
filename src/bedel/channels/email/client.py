"""Send email over SMTP with aiosmtplib: one connection per message, the server's reply classified."""

import email.utils
from email.message import EmailMessage

import aiosmtplib

from bedel.channels.ports import SendFailed
from bedel.config import SMTPSecurity


class EmailClient:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        security: SMTPSecurity = SMTPSecurity.starttls,
        timeout_s: float = 10.0,
    ) -> None:
        self._host, self._port, self._sender = host, port, sender
        self._username, self._password = username, password
        self._security = security
        self._timeout_s = timeout_s

    async def send_email(self, to: str, subject: str, text: str) -> str:
        """Send a plain-text message; return its Message-ID or raise `SendFailed`."""
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self._sender, to, subject
        message["Message-ID"] = email.utils.make_msgid()
        message.set_content(text)
        try:
            await aiosmtplib.send(
                message,
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                use_tls=self._security == SMTPSecurity.tls,
                start_tls=self._security == SMTPSecurity.starttls,
                timeout=self._timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = {error.code for error in exc.recipients}
            raise SendFailed(
                f"SMTP refused the recipient ({exc})", temporary=all(400 <= c < 500 for c in codes)
            ) from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            # Every message would fail alike: wait for the credentials to be fixed rather than fail them all.
            raise SendFailed(f"SMTP refused our credentials ({exc.code})", temporary=True) from None
        except aiosmtplib.SMTPResponseException as exc:
            # 4xx replies are "try again later"; 5xx are final.
            raise SendFailed(f"SMTP {exc.code}: {exc.message}", temporary=exc.code < 500) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SendFailed(f"SMTP server unreachable ({type(exc).__name__})", temporary=True) from None
        return str(message["Message-ID"])
