"""SMTP delivery with TLS and authentication against a real SMTP server (aiosmtpd) with a
test certificate authority (trustme): STARTTLS + AUTH, implicit TLS + AUTH, and the
refusals that keep a password from ever crossing the network in clear."""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller",
                                          reason="aiosmtpd is a dev dependency")
trustme = pytest.importorskip("trustme", reason="trustme is a dev dependency")

from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

from rechenwerk.config import Settings  # noqa: E402
from rechenwerk.errors import InvalidInput  # noqa: E402
from rechenwerk.notifications.senders import Mail, SmtpSender, make_sender  # noqa: E402

USER, PASSWORD = "rechenwerk", "s3cret-relay"


@dataclass
class Inbox:
    messages: list[tuple[str, bytes]] = field(default_factory=list)  # (auth user, data)
    auth_attempts: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((session.auth_data if session.authenticated else "",
                              envelope.content))
        return "250 queued"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login = auth_data.login.decode()
        self.auth_attempts.append(login)
        ok = login == USER and auth_data.password.decode() == PASSWORD
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ca() -> Any:
    return trustme.CA()


@pytest.fixture
def client_ctx(ca: Any) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def _server_ctx(ca: Any) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    return ctx


def _controller(inbox: Inbox, **kw: Any) -> Any:
    c = aiosmtpd_controller.Controller(
        inbox, hostname="127.0.0.1", port=_free_port(), authenticator=inbox.authenticate,
        **kw)
    c.start()
    return c


@pytest.fixture
def starttls_server(ca: Any) -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    c = _controller(inbox, tls_context=_server_ctx(ca), require_starttls=True,
                    auth_require_tls=True)
    yield inbox, c.port
    c.stop()


@pytest.fixture
def plain_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    c = _controller(inbox, auth_require_tls=False)
    yield inbox, c.port
    c.stop()


def test_starttls_and_login(starttls_server: tuple[Inbox, int],
                            client_ctx: ssl.SSLContext) -> None:
    inbox, port = starttls_server
    sender = SmtpSender("127.0.0.1", port, "rechenwerk@centre.example", username=USER,
                        password=PASSWORD, ssl_context=client_ctx)
    sender.send(Mail("pi@uni.example", "Award expires soon", "In 14 days."))
    sender.close()
    assert [(user, b"Subject: Award expires soon" in data)
            for user, data in inbox.messages] == [(USER, True)]


def test_implicit_tls_and_login(ca: Any, client_ctx: ssl.SSLContext) -> None:
    inbox = Inbox()
    # aiosmtpd does not count implicit TLS as TLS for AUTH; the client's SMTP_SSL with
    # the test CA proves the connection is encrypted.
    c = _controller(inbox, ssl_context=_server_ctx(ca), auth_require_tls=False)
    try:
        sender = SmtpSender("127.0.0.1", c.port, "rechenwerk@centre.example", tls="ssl",
                            username=USER, password=PASSWORD, ssl_context=client_ctx)
        sender.send(Mail("pi@uni.example", "Job 7 finished", "ok"))
        sender.close()
    finally:
        c.stop()
    assert [user for user, _ in inbox.messages] == [USER]


def test_wrong_password_is_an_error_to_retry(starttls_server: tuple[Inbox, int],
                                             client_ctx: ssl.SSLContext) -> None:
    inbox, port = starttls_server
    sender = SmtpSender("127.0.0.1", port, "r@c.example", username=USER, password="nope",
                        ssl_context=client_ctx)
    with pytest.raises(smtplib.SMTPAuthenticationError):
        sender.send(Mail("pi@uni.example", "s", "b"))
    assert inbox.messages == [] and set(inbox.auth_attempts) == {USER}  # PLAIN, then LOGIN


def test_credentials_never_go_in_clear(plain_server: tuple[Inbox, int]) -> None:
    inbox, port = plain_server  # offers AUTH but no STARTTLS
    sender = SmtpSender("127.0.0.1", port, "r@c.example", username=USER, password=PASSWORD)
    with pytest.raises(smtplib.SMTPNotSupportedError, match="no STARTTLS"):
        sender.send(Mail("pi@uni.example", "s", "b"))
    assert inbox.auth_attempts == [] and inbox.messages == []
    with pytest.raises(InvalidInput, match="clear text") as e:
        SmtpSender("127.0.0.1", port, "r@c.example", tls="off", username=USER,
                   password=PASSWORD)
    assert e.value.field == "smtp_tls"


def test_required_starttls_refuses_a_server_without_it(
        plain_server: tuple[Inbox, int]) -> None:
    inbox, port = plain_server
    sender = SmtpSender("127.0.0.1", port, "r@c.example", tls="starttls")
    with pytest.raises(smtplib.SMTPNotSupportedError):
        sender.send(Mail("pi@uni.example", "s", "b"))
    assert inbox.messages == []


def test_settings_reach_the_sender() -> None:
    sender = make_sender(Settings(smtp_host="mail.centre.example", smtp_port=587,
                                  smtp_tls="starttls", smtp_username=USER,
                                  smtp_password=PASSWORD))
    assert isinstance(sender, SmtpSender)
    assert (sender.port, sender.tls, sender.username) == (587, "starttls", USER)
