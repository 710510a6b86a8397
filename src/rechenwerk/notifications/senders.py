"""How a message leaves the centre: SMTP when ``settings.smtp_host`` is set, else the log."""

from __future__ import annotations

import contextlib
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal, Protocol

from rechenwerk.config import Settings
from rechenwerk.errors import InvalidInput

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


SmtpTls = Literal["auto", "starttls", "ssl", "off"]


class SmtpSender:
    """SMTP delivery; one connection per batch.

    ``tls``: ``auto`` uses STARTTLS when the server offers it (a port-25 relay, as in most
    centres); ``starttls`` requires it; ``ssl`` is implicit TLS (port 465); ``off`` never
    encrypts. With a username the sender logs in (AUTH) and never sends the password in
    clear: ``auto`` then requires STARTTLS, and ``off`` is refused."""

    name = "smtp"

    def __init__(self, host: str, port: int, sender: str, *, timeout_s: float = 10.0,
                 tls: SmtpTls = "auto", username: str = "", password: str = "",
                 ssl_context: ssl.SSLContext | None = None) -> None:
        if username and tls == "off":
            raise InvalidInput(
                "SMTP credentials would be sent in clear text (RECHENWERK_SMTP_TLS=off)",
                field="smtp_tls",
                hint="Use RECHENWERK_SMTP_TLS=starttls (port 587) or ssl (port 465).")
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout_s = timeout_s
        self.tls = tls
        self.username = username
        self.password = password
        self.ssl_context = ssl_context or ssl.create_default_context()
        self._conn: smtplib.SMTP | None = None

    def _connection(self) -> smtplib.SMTP:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _connect(self) -> smtplib.SMTP:
        if self.tls == "ssl":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s,
                                                  context=self.ssl_context)
            conn.ehlo()
        else:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            conn.ehlo_or_helo_if_needed()
            must_encrypt = self.tls == "starttls" or bool(self.username)
            if self.tls != "off" and conn.has_extn("starttls"):
                try:
                    conn.starttls(context=self.ssl_context)
                    conn.ehlo()
                except (smtplib.SMTPException, OSError) as exc:
                    conn.close()
                    if must_encrypt:
                        raise
                    log.warning("STARTTLS to %s failed (%s); sending in clear", self.host, exc)
                    conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            elif must_encrypt:
                conn.close()
                raise smtplib.SMTPNotSupportedError(
                    f"{self.host}:{self.port} offers no STARTTLS; not sending "
                    + ("credentials" if self.username else "mail") + " in clear")
        if self.username:
            conn.login(self.username, self.password)
        return conn

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
        return SmtpSender(settings.smtp_host, settings.smtp_port, settings.smtp_from,
                          tls=settings.smtp_tls, username=settings.smtp_username,
                          password=settings.smtp_password)
    return LogSender()
