"""Stopping a report computation: when its client has gone, and at the server's time
limit (``RECHENWERK_REPORT_TIMEOUT_S``, docs/security.md "Limits").

FastAPI cannot see a disconnect from a synchronous endpoint, so a report request is an
async route that runs the computation in a worker thread (:func:`run_report`) with a
:class:`Guard`, while the event loop polls ``request.is_disconnected()`` and the clock.
When either fires, the guard is stopped:

- the computation checks the guard between its steps (before every query, and every
  ``CHECK_EVERY`` rows or periods of its Python loops) and raises;
- a query in flight is interrupted in the database (``sqlite3.Connection.interrupt``,
  psycopg's cancel request), so one long statement does not outlast the client either.

The worker thread then rolls the session back (its connection goes back to the pool,
SQLite's write lock is released), logs one line (``report cancelled: client
disconnected ...`` or ``report stopped: over the time limit ...``) and the request ends
with :class:`ReportCancelled` (499, for the access log: nobody reads it) or
:class:`ReportTooLarge` (422: narrow the range or use a coarser period).

Known gap: on SQLite a transaction that is still *waiting* for the database's write lock
(``BEGIN IMMEDIATE``, up to the 30 s busy timeout) cannot be interrupted; it stops as
soon as it has the lock.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy.orm import Session
from starlette.requests import Request

from rechenwerk.errors import InvalidInput, RechenwerkError

T = TypeVar("T")
log = logging.getLogger("rechenwerk.reports")

# The computation looks at the guard every this many rows or periods of a Python loop
# (and before every query); a check costs well under a microsecond.
CHECK_EVERY = 512
# How often the event loop asks whether the client is still there (and the clock).
POLL_S = 0.1

DISCONNECTED = "client disconnected"
TIME_LIMIT = "over the time limit"
SHUTDOWN = "server shutting down"


class ReportCancelled(RechenwerkError):
    """The client went away; the report was stopped. The status only reaches the access
    log (nginx's 'client closed request')."""

    code = "client_closed_request"
    http_status = 499
    title = "Client closed request"


class ReportTooLarge(InvalidInput):
    """The report ran into the server's time limit: a 422, the same request is refused
    again on the same data, so retrying later does not help (no 503)."""

    code = "report_too_large"
    title = "Report too large"


class _Stopped(Exception):
    """Raised inside the computation by :meth:`Guard.check`."""


class Guard:
    """A cancellation token for one report computation, shared by the worker thread that
    computes and the event loop that watches the client and the clock.

    ``timeout_s``: the computation stops itself at its next check after this long (the
    watcher also interrupts a statement in flight then). None: no time limit."""

    def __init__(self, timeout_s: float | None = None) -> None:
        self.timeout_s = timeout_s
        self.started = time.monotonic()
        self._deadline = None if timeout_s is None else self.started + timeout_s
        self._stop = threading.Event()
        self._reason: str | None = None
        self._lock = threading.Lock()
        self._interrupt: Callable[[], None] | None = None
        self._stopper: threading.Thread | None = None

    # --- the watcher's side ---------------------------------------------------------
    @property
    def reason(self) -> str | None:
        """Why the guard was stopped (DISCONNECTED, TIME_LIMIT, ...), None while not."""
        return self._reason

    def expired(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def stop(self, reason: str) -> None:
        """Stop the computation: its next check raises, and the statement it is running
        (if any) is interrupted in the database. The first reason stays; calling this
        again interrupts again (a cancel that reached the database between two
        statements is ignored there, the next statement is not)."""
        with self._lock:
            if self._reason is None:
                self._reason = reason
            self._stop.set()
            interrupt = self._interrupt
            if interrupt is not None:
                try:
                    interrupt()
                except Exception as exc:  # the check between steps still stops it
                    log.warning("report: could not interrupt the running query: %s", exc)

    def stop_soon(self, reason: str) -> None:
        """:meth:`stop` in a thread of its own, for the event loop: psycopg's cancel
        request is a round trip to the database, and the thread pool may be full of the
        very reports to stop. At most one such thread at a time."""
        if self._stopper is not None and self._stopper.is_alive():
            return
        self._stopper = threading.Thread(target=self.stop, args=(reason,), daemon=True,
                                         name="report-stop")
        self._stopper.start()

    # --- the computation's side -----------------------------------------------------
    def check(self) -> None:
        """Raise if the guard was stopped or the time limit has passed."""
        if self._stop.is_set():
            raise _Stopped(self._reason)
        if self._deadline is not None and time.monotonic() >= self._deadline:
            with self._lock:
                if self._reason is None:
                    self._reason = TIME_LIMIT
                self._stop.set()
            raise _Stopped(self._reason)

    def every(self, items: Iterable[T], n: int = CHECK_EVERY) -> Iterator[T]:
        """``items``, checking the guard before the first item and before every ``n``-th
        after it (items n, 2n, ...): in chunks, so the check costs nothing per item."""
        it = iter(items)
        while True:
            self.check()
            chunk = list(itertools.islice(it, n))
            if not chunk:
                return
            yield from chunk

    def attach(self, session: Session) -> None:
        """Let :meth:`stop` interrupt the statements ``session`` runs (its transaction
        begins here if it has not yet)."""
        dbapi = session.connection().connection.dbapi_connection
        with self._lock:
            self._interrupt = _interrupter(dbapi)

    def detach(self) -> None:
        """No more interrupts: after this returns none is in flight, so the session can
        be committed or rolled back safely."""
        with self._lock:
            self._interrupt = None


NO_GUARD = Guard()  # never stopped: for callers without a client to watch (CLI, tests)


def _interrupter(dbapi: Any) -> Callable[[], None] | None:
    """How to interrupt the statement a DBAPI connection is running, from another
    thread: SQLite's ``interrupt()``; psycopg's cancel request."""
    cancel_safe = getattr(dbapi, "cancel_safe", None)
    if callable(cancel_safe):
        return lambda: cancel_safe(timeout=5.0)
    for name in ("interrupt", "cancel"):
        fn = getattr(dbapi, name, None)
        if callable(fn):
            return fn  # type: ignore[no-any-return]
    return None


def compute_guarded(session: Session, guard: Guard, what: str,
                    compute: Callable[[Guard], T]) -> T:
    """Run ``compute(guard)`` on ``session`` in this (worker) thread; ``what`` names it
    in the log and the error ("utilisation report", "reports page"). If the guard was
    stopped, the session is rolled back here (its connection returned), the line saying
    so is logged and ReportCancelled or ReportTooLarge raised."""
    try:
        guard.check()
        guard.attach(session)
        try:
            return compute(guard)
        finally:
            guard.detach()
    except Exception as exc:
        reason = guard.reason
        if reason is None:
            raise
        _release(session)
        elapsed = time.monotonic() - guard.started
        if reason == TIME_LIMIT:
            limit = f"{guard.timeout_s:g} s" if guard.timeout_s is not None else "?"
            log.warning("report stopped: over the time limit of %s (%s, after %.1f s; "
                        "transaction rolled back, database connection returned)",
                        limit, what, elapsed)
            raise ReportTooLarge(
                f"report too large: the {what} took longer than the server's limit "
                f"of {limit} and was stopped",
                hint="Narrow the range (a later from or an earlier to) or use a coarser "
                     "period (week or month).",
            ) from None
        log.warning("report cancelled: %s (%s, after %.1f s; transaction rolled "
                    "back, database connection returned)", reason, what, elapsed)
        raise ReportCancelled(f"report cancelled: {reason}") from (
            None if isinstance(exc, _Stopped) else exc)


def _release(session: Session) -> None:
    """Roll back: the transaction ends and its connection goes back to the pool now, not
    when the request's clean-up gets to it. The session stays open (an error page may
    still load the user for its menu); the request closes it."""
    try:
        session.rollback()
    except Exception as exc:  # e.g. the connection broke: closing invalidates it
        log.warning("report: rollback after stopping failed: %s", exc)
        session.close()


async def run_report(request: Request, session: Session, what: str,
                     compute: Callable[[Guard], T], *,
                     timeout_s: float | None) -> T:
    """``compute(guard)`` in a worker thread, stopped when the client disconnects or
    after ``timeout_s`` seconds (see the module's doc). Everything ``compute`` does with
    ``session`` happens in that thread; this returns (or raises) only once the thread
    is done with it."""
    guard = Guard(timeout_s)
    outcome: list[tuple[bool, Any]] = []
    done = anyio.Event()

    async def work() -> None:
        try:
            outcome.append((True, await anyio.to_thread.run_sync(
                compute_guarded, session, guard, what, compute)))
        except Exception as exc:
            outcome.append((False, exc))
        finally:
            done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(work)
        try:
            while not done.is_set():
                with anyio.move_on_after(POLL_S):
                    await done.wait()
                if done.is_set():
                    break
                if guard.reason is not None:
                    guard.stop_soon(guard.reason)  # again until it ends: see Guard.stop
                elif await request.is_disconnected():
                    guard.stop_soon(DISCONNECTED)
                elif guard.expired():
                    guard.stop_soon(TIME_LIMIT)
        except anyio.get_cancelled_exc_class():
            guard.stop_soon(SHUTDOWN)
            with anyio.CancelScope(shield=True):
                await done.wait()
            raise
    ok, value = outcome[0]
    if not ok:
        raise value
    result: T = value
    return result
