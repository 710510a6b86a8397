"""How a message leaves the centre: SMTP when ``settings.smtp_host`` is set, else the log."""

from __future__ import annotations

import contextlib
import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

from rechenwerk.config import Settings

log = logging.getLogger("rechenwerk.notifications")


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    body: str


class Sender(Protocol):
    name: str

    def send(self, mail: Mail) -> None:
        """Deliver ``mail`` or raise (any exception means: retry later)."""
        ...


class LogSender:
    """The default: every notification is written to the server log and kept in the outbox."""

    name = "log"

    def __init__(self) -> None:
        self.sent: list[Mail] = []

    def send(self, mail: Mail) -> None:
        log.info("notification to %s: %s\n%s", mail.to, mail.subject, mail.body)
        self.sent.append(mail)


class SmtpSender:
    """Plain SMTP (port 25 relay, as in most centres); one connection per batch."""

    name = "smtp"

    def __init__(self, host: str, port: int, sender: str, *, timeout_s: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout_s = timeout_s
        self._conn: smtplib.SMTP | None = None

    def _connection(self) -> smtplib.SMTP:
        if self._conn is None:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            conn.ehlo_or_helo_if_needed()
            if conn.has_extn("starttls"):
                try:
                    conn.starttls()
                    conn.ehlo()
                except (smtplib.SMTPException, OSError) as exc:  # pragma: no cover - relay
                    log.warning("STARTTLS to %s failed (%s); sending in clear", self.host, exc)
                    conn.close()
                    conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            self._conn = conn
        return self._conn

    def send(self, mail: Mail) -> None:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = mail.to
        msg["Subject"] = mail.subject
        msg.set_content(mail.body)
        try:
            self._connection().send_message(msg)
        except (smtplib.SMTPServerDisconnected, ConnectionError):
            # A dropped connection: reconnect once, then let the caller retry later.
            self.close()
            self._connection().send_message(msg)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._conn.quit()
            self._conn = None


def make_sender(settings: Settings) -> LogSender | SmtpSender:
    if settings.smtp_host:
        return SmtpSender(settings.smtp_host, settings.smtp_port, settings.smtp_from)
    return LogSender()
