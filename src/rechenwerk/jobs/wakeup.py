"""Wake the scheduler loop when a transaction that gave it work has committed.

Services that change what the scheduler sees (a submission, a cancel, a drained or
resumed node) call :func:`wake_after_commit`; the composition root (``rechenwerk/app.py``)
installs :func:`install_wake_hook` on the session factory, so the loop runs its next cycle
as soon as the change is visible to it, and never for a transaction that rolled back. No
router or page commits by hand for this.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

_KEY = "rechenwerk.wake_scheduler"
_COMMITTED = "rechenwerk.committed"


def wake_after_commit(session: Session) -> None:
    """Ask for a scheduler cycle once this session's transaction commits."""
    session.info[_KEY] = True


def install_wake_hook(factory: sessionmaker[Session], wake: Callable[[], None]) -> None:
    """Call ``wake()`` after each commit of a session from ``factory`` that asked for it."""

    def after_commit(session: Session) -> None:
        session.info[_COMMITTED] = True

    def after_end(session: Session, transaction: SessionTransaction) -> None:
        # Runs for savepoints too (each forgets its own commit); only the end of the
        # outermost transaction, committed, makes the change visible to the loop.
        committed = session.info.pop(_COMMITTED, False)
        if transaction.parent is None and session.info.pop(_KEY, False) and committed:
            wake()

    event.listen(factory, "after_commit", after_commit)
    event.listen(factory, "after_transaction_end", after_end)
