"""FastAPI dependencies shared by every router: the per-request transaction, the clock,
the authenticated user.

- ``get_session``: one transaction per request — commit when the endpoint returns,
  roll back on any error, so nothing is half-written. The commit happens *before* the
  response is sent (a failing commit becomes an error response, and a client never reads
  stale data right after a write).
- ``current_user``: the user behind ``Authorization: Bearer <API token>`` (401 otherwise).
- ``require_operator``: ``current_user`` that must be an operator (403 otherwise).

Everything long-lived (settings, session factory, clock, backend) comes from the one
:class:`rechenwerk.app.Runtime` the composition root put on ``app.state.runtime``;
``runtime_of``, ``settings_of``, ``backend_of``, ``inventory_of``, ``queue_orders_of`` and
``centre_gpus`` are the only ways routers and pages reach it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from rechenwerk.access.aup import aup_refusal
from rechenwerk.access.models import User
from rechenwerk.access.security import authenticate, cached_token
from rechenwerk.clock import Clock
from rechenwerk.config import Settings
from rechenwerk.errors import Conflict, PermissionDenied, ReadOnlyToken, Unauthenticated
from rechenwerk.execution.base import ExecutionBackend, NodeInventory
from rechenwerk.log_format import note_user

if TYPE_CHECKING:
    from rechenwerk.app import Runtime
    from rechenwerk.jobs.queue_order import QueueOrderBoard


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def settings_of(request: Request) -> Settings:
    return runtime_of(request).settings


def backend_of(request: Request) -> ExecutionBackend:
    return runtime_of(request).backend


def queue_orders_of(request: Request) -> QueueOrderBoard:
    """The scheduler loop's last queue order (``jobs/queue_order.py``)."""
    return runtime_of(request).queue_orders


def inventory_of(request: Request) -> Sequence[NodeInventory]:
    """The backend's nodes (name, GPUs, GPU type, block)."""
    return runtime_of(request).inventory()


def inventory_gpus(request: Request) -> int | None:
    """Total GPUs of the centre's inventory; None when the backend reports none (a
    capacity is then unknown, not 1 GPU)."""
    return sum(int(n.gpus) for n in runtime_of(request).inventory()) or None


def centre_gpus(request: Request) -> int:
    """Total GPUs of the centre's inventory (at least 1, so ratios stay defined)."""
    return runtime_of(request).centre_gpus()


# What a unique constraint protects, in the user's words: (fragment of the database's
# message, what conflicted). The database's own message (constraint and column names,
# values) never reaches the client; it is logged.
_CONFLICT_SUBJECTS: tuple[tuple[str, str], ...] = (
    ("idempotency_key", "a job with this idempotency key exists already"),
    ("reviewer_user_id", "this reviewer is assigned to the proposal already"),
    ("awards.proposal_id", "this proposal has an award already"),  # SQLite
    ("ix_awards_proposal_id", "this proposal has an award already"),  # PostgreSQL
    ("username", "a user with this username exists already"),
    ("token_hash", "this API token exists already"),
    ("organizations", "an organisation with this name exists already"),
    ("calls", "a call with this slug exists already"),
    ("projects", "a project with this slug exists already"),
    ("gpu_type", "a price for this GPU type exists already"),
    ("usage_records", "this run has been settled already"),
)
_log = logging.getLogger(__name__)


def _conflict(err: IntegrityError) -> Conflict:
    """A constraint the service checks lost a race with a concurrent request: say what
    conflicted in user terms, never the database's message."""
    text = str(err.orig or "").lower()
    _log.info("integrity error mapped to 409: %s", text.splitlines()[0] if text else "")
    unique = "unique" in text or "duplicate" in text  # not a foreign key, NOT NULL, CHECK
    subject = next((what for fragment, what in _CONFLICT_SUBJECTS
                    if unique and fragment in text),
                   "another request created or changed the same item at the same time")
    return Conflict(
        f"the change conflicts with existing data: {subject}",
        hint="Another request may have created or changed the same item; reload and retry.",
    )


async def get_session(request: Request) -> Session:
    """The request's session; its transaction commits when the endpoint function returns
    (before the response is sent) and rolls back if anything raised.

    Use it as ``session: Session = Depends(get_session)`` or ``session: DbSession``. It is a
    plain function that registers commit/rollback on FastAPI's per-endpoint exit stack, so
    the transaction boundary does not depend on how callers spell ``Depends``. It does no
    I/O (the session connects on first use), so it runs on the event loop, and the end of
    the request costs at most one hop to the thread pool (none when the endpoint
    committed already and left nothing pending).
    """
    factory = runtime_of(request).session_factory
    stack = request.scope.get("fastapi_function_astack")
    if not isinstance(stack, AsyncExitStack):  # pragma: no cover - FastAPI internals moved
        raise RuntimeError("FastAPI no longer exposes the function exit stack")
    session = factory()

    def _finish(commit: bool) -> None:
        try:
            if commit:
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    raise
            else:
                session.rollback()
        finally:
            session.close()

    async def _end(
        exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        commit = exc_type is None and not getattr(request.state, "rollback_only", False)
        if commit and _idle(session):
            session.close()  # nothing to commit and no connection held: no I/O
            return False
        try:
            await run_in_threadpool(_finish, commit)
        except IntegrityError as err:
            raise _conflict(err) from err
        if not commit and isinstance(exc, IntegrityError):
            raise _conflict(exc) from exc
        return False

    stack.push_async_exit(_end)
    request.state.db_session = session
    return session


def _idle(session: Session) -> bool:
    """No transaction open (so no connection checked out) and nothing waiting to flush."""
    return not (session.in_transaction() or session.new or session.deleted or session.dirty)


def rollback_request(request: Request) -> None:
    """Roll back this request's transaction instead of committing it.

    Route classes that turn errors into ordinary responses themselves (the portal's HTML
    error pages) must call this: the transaction ends after the route handler returns, so
    an error caught inside the handler would otherwise be committed half-done.
    """
    request.state.rollback_only = True
    session = getattr(request.state, "db_session", None)
    if isinstance(session, Session):
        session.rollback()


DbSession = Annotated[Session, Depends(get_session)]


def get_clock(request: Request) -> Clock:
    return runtime_of(request).clock


def get_now(request: Request) -> datetime:
    return get_clock(request).now()


async def _now(request: Request) -> datetime:  # async: no thread-pool hop per request
    return get_clock(request).now()


Now = Annotated[datetime, Depends(_now)]


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated(
            "missing API token",
            hint="Send 'Authorization: Bearer <token>'; with the CLI run `rechenwerk login`.",
        )
    return secret.strip()


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _token_user(session: Session, secret: str, now: datetime, method: str,
                gate_aup: bool, changes: bool) -> User:
    """The token's user via this process's cache (one primary-key read of the auth
    generation) or the database, then the token's scope and the AUP gate: the one
    place where the API enforces both, in one thread-pool hop."""
    found = cached_token(session, secret, now=now) or authenticate(session, secret, now=now)
    if changes and method not in SAFE_METHODS:
        if found.scope != "full":
            raise ReadOnlyToken(
                f"this API token is read-only: it may only read (GET, HEAD), not {method}",
                hint="Create a token with full scope for changes: `rechenwerk token "
                "create --scope full` or the portal's Settings > API tokens page.")
        if gate_aup and found.aup_pending is not None:
            raise aup_refusal(found.aup_pending)
    return found.user


async def _authenticated(request: Request, session: Session, gate_aup: bool,
                         changes: bool = True) -> User:
    # Another authenticator (e.g. the portal's session cookie) may have set the user.
    user = getattr(request.state, "user", None)
    if isinstance(user, User):
        note_user(user.username)
        if user in session:
            return user
        return await run_in_threadpool(session.merge, user, load=True)
    secret = _bearer(request)
    now = get_clock(request).now()  # not a ``Now`` dependency: one fewer to solve per request
    found = await run_in_threadpool(_token_user, session, secret, now, request.method,
                                    gate_aup, changes)
    note_user(found.username)  # for this request's log lines
    return found


async def current_user(request: Request, session: DbSession) -> User:
    """The user behind the request's Bearer API token (401 otherwise). A request that
    changes something needs a full-scope token (403 ``read_only_token``) and a user who
    accepted the centre's current AUP (403 ``aup_not_accepted``; access/aup.py).

    A token this process checked less than ``TOKEN_CACHE_TTL_S`` seconds ago is served
    from the in-process token cache after one primary-key read of the auth generation
    (see ``rechenwerk.access.security``); otherwise it is looked up in the database."""
    return await _authenticated(request, session, gate_aup=True)


async def current_user_before_aup(request: Request, session: DbSession) -> User:
    """As :func:`current_user` without the AUP gate: for accepting the AUP itself,
    publishing one (operators) and revoking a token, which must always be possible."""
    return await _authenticated(request, session, gate_aup=False)


CurrentUserBeforeAup = Annotated[User, Depends(current_user_before_aup)]


async def current_reader(request: Request, session: DbSession) -> User:
    """As :func:`current_user` for routes that change nothing whatever their method (the
    planner's calculators take their input as a POST body): read-only tokens and users
    who have not accepted the AUP may use them."""
    return await _authenticated(request, session, gate_aup=False, changes=False)


CurrentUser = Annotated[User, Depends(current_user)]


async def require_operator(user: CurrentUser) -> User:
    """``current_user`` who must be an operator (403 otherwise)."""
    if not user.is_operator:
        raise PermissionDenied("only operators may do this", hint="Ask an operator.")
    return user


Operator = Annotated[User, Depends(require_operator)]
