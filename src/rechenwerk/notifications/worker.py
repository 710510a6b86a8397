"""The notifier: a background thread of the server that queues due notifications and
sends the outbox. The composition root (``rechenwerk/app.py``) starts it with the server
when ``settings.scheduler_enabled``."""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from rechenwerk.clock import Clock, WallClock
from rechenwerk.notifications.senders import Sender, SmtpSender
from rechenwerk.notifications.service import deliver_due, scan
from rechenwerk.store.session import session_scope

log = logging.getLogger("rechenwerk.notifications")

DEFAULT_INTERVAL_S = 15.0


class Notifier:
    def __init__(self, session_factory: sessionmaker[Session], sender: Sender, *,
                 clock: Clock | None = None, interval_s: float = DEFAULT_INTERVAL_S,
                 report_reminder_days: int = 14) -> None:
        self.session_factory = session_factory
        self.report_reminder_days = report_reminder_days
        self.sender = sender
        self.clock = clock or WallClock()
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_scan: datetime | None = None

    def run_once(self) -> tuple[int, int]:
        """Queue what is due, then send; returns (queued, sent)."""
        started = self.clock.now()
        with session_scope(self.session_factory) as session:
            queued = scan(session, now=started, since=self._last_scan,
                          report_reminder_days=self.report_reminder_days)
        self._last_scan = started
        with session_scope(self.session_factory) as session:
            report = deliver_due(session, self.sender, now=self.clock.now())
        if isinstance(self.sender, SmtpSender):
            self.sender.close()
        return queued, report.sent

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # keep the thread alive; the next round retries
                log.exception("notifier round failed")
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rechenwerk-notifier",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
