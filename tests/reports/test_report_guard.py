"""The report guard (``reports/guard.py``) on its own, on SQLite and PostgreSQL: a stopped
guard interrupts the statement in flight and the checks between steps, the session is
rolled back and its connection returned before the one log line; the time limit ends a
computation with a 422 that says to narrow the range; the setting is range-checked.
The guard under a real server and a real disconnect: ``tests/jobs/test_report_disconnect.py``."""

from __future__ import annotations

import itertools
import logging
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from report_data import Centre
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from rechenwerk.config import get_settings
from rechenwerk.errors import InvalidInput
from rechenwerk.reports import guard as report_guard
from rechenwerk.reports.gpu_use import gpu_use_report
from rechenwerk.reports.guard import (
    DISCONNECTED,
    Guard,
    ReportCancelled,
    ReportTooLarge,
    compute_guarded,
)
from rechenwerk.reports.service import energy_report, usage_report, waits_report
from rechenwerk.reports.tables import Scope
from rechenwerk.reports.utilisation import utilisation_report
from waiting import wait_for

# A statement that never ends by itself: only an interrupt stops it.
ENDLESS = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
              "SELECT max(x) FROM c",
    "postgresql": "SELECT pg_sleep(3600)",
}


def _in_thread(fn: Any) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, errors


def test_stop_interrupts_the_statement_in_flight_and_returns_the_connection(
        session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture) -> None:
    session = session_factory()
    engine = session.get_bind()
    dialect = engine.dialect.name
    guard = Guard()
    running = threading.Event()

    def endless(_guard: Guard) -> None:
        running.set()
        session.execute(text(ENDLESS[dialect]))

    caplog.set_level(logging.WARNING, logger="rechenwerk.reports")
    t, errors = _in_thread(lambda: compute_guarded(session, guard, "endless report", endless))
    wait_for(running.is_set, "the statement to start")
    if dialect == "postgresql":
        wait_for(lambda: _pg_running(session_factory, "pg_sleep"), "pg_sleep to run")
    # Stopped repeatedly, as the server's watcher does, until the thread is done: an
    # interrupt that lands just before the statement starts is lost on SQLite.
    wait_for(lambda: (guard.stop(DISCONNECTED), not t.is_alive())[1],
             "the interrupted computation to end")
    assert len(errors) == 1 and isinstance(errors[0], ReportCancelled), errors
    assert errors[0].http_status == 499
    assert not session.in_transaction()
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    lines = [r.getMessage() for r in caplog.records if r.name == "rechenwerk.reports"]
    assert len(lines) == 1 and lines[0].startswith(
        "report cancelled: client disconnected (endless report, after"), lines
    assert "transaction rolled back, database connection returned" in lines[0]


def _pg_running(factory: sessionmaker[Session], fragment: str) -> bool:
    with factory() as s:
        return bool(s.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
            "AND query LIKE :q AND pid <> pg_backend_pid()"), {"q": f"%{fragment}%"}))


def test_time_limit_stops_a_python_loop_with_a_422_that_says_what_to_do(
        session: Session, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rechenwerk.reports")
    guard = Guard(timeout_s=0.2)

    def endless(g: Guard) -> None:
        session.execute(text("SELECT 1"))
        for _ in g.every(itertools.count()):
            pass

    with pytest.raises(ReportTooLarge) as err:
        compute_guarded(session, guard, "utilisation report", endless)
    assert err.value.http_status == 422 and err.value.code == "report_too_large"
    assert err.value.message.startswith("report too large: the utilisation report took "
                                        "longer than the server's limit of 0.2 s")
    assert "Narrow the range" in (err.value.hint or "")
    assert "coarser period" in (err.value.hint or "")
    assert not session.in_transaction()
    assert [r.getMessage().split(" (")[0] for r in caplog.records
            if r.name == "rechenwerk.reports"] == [
        "report stopped: over the time limit of 0.2 s"]


@pytest.mark.parametrize("report", ["usage", "utilisation", "waits", "energy", "gpu-use"])
def test_every_report_stops_at_a_stopped_guard(session: Session, centre: Centre,
                                               report: str) -> None:
    guard = Guard()
    guard.stop(DISCONNECTED)
    jan, feb = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    everything = Scope(None)
    make = {
        "usage": lambda g: usage_report(session, scope=everything, start=jan, end=feb,
                                        guard=g),
        "utilisation": lambda g: utilisation_report(session, scope=everything, start=jan,
                                                    end=feb, total_gpus=8, now=feb, guard=g),
        "waits": lambda g: waits_report(session, scope=everything, start=jan, end=feb,
                                        guard=g),
        "energy": lambda g: energy_report(session, scope=everything, start=jan, end=feb,
                                          guard=g),
        "gpu-use": lambda g: gpu_use_report(session, scope=everything, start=jan, end=feb,
                                            guard=g),
    }[report]
    with pytest.raises(ReportCancelled):
        compute_guarded(session, guard, report, make)
    # ... and an unstopped guard lets it through
    assert compute_guarded(session, Guard(timeout_s=60), report, make).name == report


def test_checks_come_every_few_hundred_items() -> None:
    guard = Guard()
    seen = []
    with pytest.raises(report_guard._Stopped):
        for i in guard.every(range(10_000), 100):
            seen.append(i)
            if i == 250:
                guard.stop(DISCONNECTED)
    assert seen[-1] == 299  # the check before item 300 raised


@pytest.fixture
def _fresh_settings() -> Any:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("_fresh_settings")
@pytest.mark.parametrize(("value", "text"), [
    ("0", "greater than or equal to 1"),
    ("-5", "greater than or equal to 1"),
    ("nan", "finite number"),
    ("inf", "finite number"),
    ("86400", "less than or equal to 3600"),
])
def test_report_timeout_setting_is_range_checked(monkeypatch: pytest.MonkeyPatch,
                                                 value: str, text: str) -> None:
    monkeypatch.setenv("RECHENWERK_REPORT_TIMEOUT_S", value)
    with pytest.raises(InvalidInput, match=f"RECHENWERK_REPORT_TIMEOUT_S: .*{text}"):
        get_settings()


@pytest.mark.usefixtures("_fresh_settings")
def test_report_timeout_setting_default_and_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECHENWERK_REPORT_TIMEOUT_S", raising=False)
    assert get_settings().report_timeout_s == 60.0
    get_settings.cache_clear()
    monkeypatch.setenv("RECHENWERK_REPORT_TIMEOUT_S", "2.5")
    assert get_settings().report_timeout_s == 2.5
