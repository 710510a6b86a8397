"""A tiny SMTP server for tests that check delivered mail: it accepts every message
(EHLO, MAIL, RCPT, DATA, QUIT) and keeps them, parsed, in ``messages``.

    with SmtpCapture() as smtp:
        sender = SmtpSender(smtp.host, smtp.port, "rechenwerk@centre.example")
        ...
        smtp.wait_for(lambda m: m["To"] == "pi@uni.example", "the mail to the PI")
"""

from __future__ import annotations

import email
import email.policy
import socketserver
import threading
from collections.abc import Callable
from email.message import Message
from types import TracebackType

from waiting import wait_for


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        capture: SmtpCapture = self.server.capture  # type: ignore[attr-defined]
        self.wfile.write(b"220 capture ESMTP\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode(errors="replace").strip().upper()
            if cmd.startswith(("EHLO", "HELO")):
                self.wfile.write(b"250 capture\r\n")
            elif cmd.startswith(("MAIL", "RCPT", "RSET", "NOOP")):
                self.wfile.write(b"250 OK\r\n")
            elif cmd == "DATA":
                self.wfile.write(b"354 go ahead\r\n")
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    chunk = self.rfile.readline()
                    if not chunk:
                        return
                    data += chunk
                with capture.lock:
                    # The default policy unfolds long headers (a Subject beyond 78 characters).
                    capture.messages.append(
                        email.message_from_bytes(data[:-3], policy=email.policy.default)
                    )
                self.wfile.write(b"250 queued\r\n")
            elif cmd == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"502 not implemented\r\n")


class SmtpCapture:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.capture = self  # type: ignore[attr-defined]
        self.host, self.port = "127.0.0.1", int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> SmtpCapture:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()

    def to(self, address: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]

    def wait_for(self, match: Callable[[Message], bool], what: str) -> Message:
        def found() -> Message | None:
            with self.lock:
                return next((m for m in self.messages if match(m)), None)

        return wait_for(found, what)


def subject_of(message: Message) -> str:
    """The Subject as one line (a long one arrives folded, its parts joined by spaces)."""
    return " ".join(str(message["Subject"] or "").split())


def text_of(message: Message) -> str:
    """The plain-text body of a delivered message."""
    payload = message.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload.decode(message.get_content_charset() or "utf-8")
    return str(message.get_payload())
