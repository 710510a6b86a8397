"""Credentials: API tokens (random secret, stored as SHA-256, shown once, revocable, with
expiry and a scope: "full", or "read" for safe methods only) and passwords (argon2id)
for the web portal.

Token cache: the API authenticates every request by its Bearer token. To spare each
request the token lookup, :func:`cached_token` keeps, per process, a short-lived
snapshot (``TOKEN_CACHE_TTL_S`` seconds) of what a successful :func:`authenticate`
found: the owner's columns, the token's scope and expiry, when it was last marked used,
whether the owner still has to accept the AUP, and the auth generation it was read at.

- Revocation is exact across processes: every change that can end or narrow a
  credential (a token's ``revoked_at``/``expires_at``/owner/scope, any change to a user
  row, a deletion of either, an AUP published or accepted) raises the auth generation
  in its own transaction (``access/auth_generation.py``). A cache hit reads that one
  row (a primary-key read) and is used only when the generation is the one the entry
  was read at; so a revocation by another worker or the CLI takes effect at the next
  request everywhere. The generation is read *before* the token, so an entry can only
  be stored with an older generation than its data, never a newer one.
- In this process the cache is also cleared when such a change is flushed and again
  when its transaction commits (an entry read from the database meanwhile is not
  stored: in-process generation counter).
- Expiry is checked on every request against the cached ``expires_at`` (exact).
- ``last_used_at`` keeps its one-minute resolution: an entry whose token was last marked
  used more than ``LAST_USED_RESOLUTION`` ago is not served from the cache.
- Changes made with plain SQL must call :func:`bump_auth_generation` too.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, case, delete, event, inspect, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, make_transient_to_detached

from rechenwerk.access.audit import record
from rechenwerk.access.aup import pending_aup_version
from rechenwerk.access.auth_generation import bump_auth_generation, read_auth_generation
from rechenwerk.access.models import ApiToken, LoginAttempt, User
from rechenwerk.clock import ensure_utc
from rechenwerk.errors import (
    InvalidInput,
    NotFound,
    PermissionDenied,
    TooManyAttempts,
    Unauthenticated,
)
from rechenwerk.store.base import UTCDateTime

TOKEN_PREFIX = "rw_"
MIN_PASSWORD_LENGTH = 8
# A token's last_used_at is refreshed at most this often (avoids a write per request).
LAST_USED_RESOLUTION = timedelta(minutes=1)
TOKEN_SCOPES = ("full", "read")  # read: safe methods (GET, HEAD) only
MAX_TOKEN_DAYS = 366  # the portal's and the API's longest token lifetime


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher()


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"password is too short ({len(password)} characters)",
            field="password",
            hint=f"Use at least {MIN_PASSWORD_LENGTH} characters.",
        )
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_token(
    session: Session,
    user: User,
    *,
    name: str,
    now: datetime,
    expires_at: datetime | None = None,
    actor: User | None = None,
    scope: str = "full",
) -> tuple[ApiToken, str]:
    """Create a token for ``user``; returns the row and the secret (shown once, never stored)."""
    if not name.strip():
        raise InvalidInput("token name must not be empty", field="name")
    if scope not in TOKEN_SCOPES:
        raise InvalidInput(f"unknown token scope {scope!r}", field="scope",
                           hint="Use 'full' or 'read' (read-only: GET and HEAD requests).")
    if expires_at is not None and ensure_utc(expires_at) <= now:
        raise InvalidInput(
            "token expiry lies in the past",
            field="expires_at",
            hint="Give a future expiry or none (never expires).",
        )
    secret = new_token_secret()
    token = ApiToken(
        user_id=user.id,
        name=name.strip(),
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        token_hash=hash_token(secret),
        created_at=now,
        expires_at=ensure_utc(expires_at) if expires_at else None,
        scope=scope,
    )
    session.add(token)
    session.flush()
    record(session, actor or user, "token.create", "api_token", token.id,
           {"user": user.username, "name": token.name, "expires_at": token.expires_at,
            "scope": scope}, at=now)
    return token, secret


TOKEN_CACHE_TTL_S = 5.0
TOKEN_CACHE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class TokenAuth:
    """Who a token authenticates, what it may do, and whether the AUP still waits."""

    user: User
    scope: str  # "full" or "read"
    aup_pending: int | None  # the current AUP version the user has not accepted


@dataclass(frozen=True, slots=True)
class _CachedToken:
    user: User  # detached snapshot of the owner's columns; never added to a session
    scope: str
    aup_pending: int | None
    expires_at: datetime | None
    last_used_at: datetime | None
    db_generation: int  # the database's auth generation read before the token
    cached_at: float  # time.monotonic()


class _TokenCache:
    def __init__(self) -> None:
        self.entries: dict[tuple[int, str], _CachedToken] = {}
        self.generation = 0
        self.lock = threading.Lock()

    def clear(self) -> None:
        with self.lock:
            self.generation += 1
            self.entries.clear()


_TOKEN_CACHE = _TokenCache()


def clear_token_cache() -> None:
    """Forget every token cached in this process (other processes see a change through
    :func:`bump_auth_generation`)."""
    _TOKEN_CACHE.clear()


def _cache_key(session: Session, secret: str) -> tuple[int, str]:
    # Per engine: tests and tools may serve several databases from one process.
    return (id(session.get_bind().engine), hash_token(secret))


def _snapshot(user: User) -> User:
    """A detached copy of ``user``'s column values, safe to share between threads."""
    state = inspect(user)
    copy = User(**{a.key: getattr(user, a.key) for a in state.mapper.column_attrs})
    make_transient_to_detached(copy)
    return copy


def cached_token(session: Session, secret: str, *, now: datetime) -> TokenAuth | None:
    """The token's user, scope and AUP state from this process's cache (the user attached
    to ``session`` without loading it), after one primary-key read of the auth
    generation; None when the token must be checked in the database (not cached, the
    generation moved on, entry older than ``TOKEN_CACHE_TTL_S``, ``last_used_at`` due
    for a refresh). An expired token raises Unauthenticated as :func:`authenticate`."""
    entry = _TOKEN_CACHE.entries.get(_cache_key(session, secret))
    if entry is None or time.monotonic() - entry.cached_at > TOKEN_CACHE_TTL_S:
        return None
    if entry.expires_at is not None and entry.expires_at <= now:
        raise Unauthenticated("API token has expired", hint=_TOKEN_HINT)
    if entry.last_used_at is None or now - entry.last_used_at > LAST_USED_RESOLUTION:
        return None
    if read_auth_generation(session) != entry.db_generation:
        return None
    return TokenAuth(session.merge(entry.user, load=False), entry.scope, entry.aup_pending)


def cached_token_user(session: Session, secret: str, *, now: datetime) -> User | None:
    found = cached_token(session, secret, now=now)
    return found.user if found is not None else None


def token_cache_generation() -> int:
    return _TOKEN_CACHE.generation


def _remember(session: Session, secret: str, token: ApiToken, found: TokenAuth,
              generation: int, db_generation: int) -> None:
    entry = _CachedToken(_snapshot(found.user), found.scope, found.aup_pending,
                         token.expires_at, token.last_used_at, db_generation,
                         time.monotonic())
    cache = _TOKEN_CACHE
    with cache.lock:
        if cache.generation != generation:  # changed while we read: do not store
            return
        if len(cache.entries) >= TOKEN_CACHE_MAX:
            cache.entries.clear()
        cache.entries[_cache_key(session, secret)] = entry


def _token_changed(_mapper: Any, conn: Connection, target: ApiToken) -> None:
    attrs = inspect(target).attrs
    if any(attrs[k].history.has_changes() for k in ("revoked_at", "expires_at", "user_id",
                                                     "token_hash", "scope")):
        _auth_changed(_mapper, conn, target)


def _auth_changed(_mapper: Any, conn: Connection, target: Any) -> None:
    bump_auth_generation(conn)  # in the change's transaction: other processes see both
    session = inspect(target).session
    if session is not None:
        session.info["rechenwerk_auth_changed"] = True
    _TOKEN_CACHE.clear()


def _user_changed(_mapper: Any, conn: Connection, target: User) -> None:
    # after_update also runs for users marked dirty without a changed column.
    state = inspect(target)
    if any(state.attrs[a.key].history.has_changes() for a in state.mapper.column_attrs):
        _auth_changed(_mapper, conn, target)


def _after_commit(session: Session) -> None:
    if session.info.pop("rechenwerk_auth_changed", False):
        _TOKEN_CACHE.clear()


event.listen(ApiToken, "after_update", _token_changed)
event.listen(ApiToken, "after_delete", _auth_changed)
event.listen(User, "after_update", _user_changed)
event.listen(User, "after_delete", _auth_changed)
event.listen(Session, "after_commit", _after_commit)

_TOKEN_HINT = "Create a token with `rechenwerk admin token create` and run `rechenwerk login`."


def authenticate(session: Session, secret: str, *, now: datetime) -> TokenAuth:
    """The active user owning ``secret``, the token's scope and the user's pending AUP
    version; Unauthenticated when unknown, revoked or expired. A success is remembered
    for :func:`cached_token`."""
    hint = _TOKEN_HINT
    generation = _TOKEN_CACHE.generation
    db_generation = read_auth_generation(session)  # before the token: see the docstring
    token = session.scalars(
        select(ApiToken).where(ApiToken.token_hash == hash_token(secret))
    ).one_or_none()
    if token is None:
        raise Unauthenticated("unknown API token", hint=hint)
    if token.revoked_at is not None:
        raise Unauthenticated("API token has been revoked", hint=hint)
    if token.expires_at is not None and token.expires_at <= now:
        raise Unauthenticated("API token has expired", hint=hint)
    if not token.user.is_active:
        raise Unauthenticated("user account is deactivated", hint="Ask an operator.")
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        token.last_used_at = now
    found = TokenAuth(token.user, token.scope, pending_aup_version(session, token.user_id))
    _remember(session, secret, token, found, generation, db_generation)
    return found


def authenticate_token(session: Session, secret: str, *, now: datetime) -> User:
    """:func:`authenticate`'s user."""
    return authenticate(session, secret, now=now).user


# Brute-force protection (login throttle). Before each password check one slot is taken,
# atomically in the database, from two counters: the username tried and the client's
# address (``login_attempts``, one row per counter with the start of its window). An
# attempt whose address or username counter is already full is refused (429) without
# any argon2 check, also with the right password, until that window ends; a successful
# login gives its own two slots back (nobody else's). So per window at most
# LOGIN_MAX_FAILURES checks run for one username and LOGIN_MAX_FAILURES_PER_ADDRESS for
# one address, however many requests arrive at once and in however many server
# processes. A window starts with the first attempt after the previous one ended.
# Failures are also "login.failed" entries of the audit log, for operators.
LOGIN_MAX_FAILURES = 5
LOGIN_MAX_FAILURES_PER_ADDRESS = 20  # an institute behind one NAT address shares it
LOGIN_FAILURE_WINDOW = timedelta(minutes=15)
_KEY_LENGTH = 64  # LoginAttempt.key


def address_key(address: str | None) -> str:
    """The throttle's key for a client address: IPv4 as is, IPv6 by its /64 network (one
    host usually holds a whole /64, so single IPv6 addresses are free to rotate)."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:_KEY_LENGTH]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        if not ip.is_loopback:
            return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """An argon2 hash of a random secret, made once: unknown users and users without a
    password cost one verification too, so login time does not tell names apart."""
    return _hasher().hash(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class _Slot:
    kind: str
    key: str
    window_start: datetime


def _take(conn: Connection, kind: str, key: str, now: datetime) -> tuple[int, _Slot]:
    """Add one to the (kind, key) counter in one atomic statement (a new window when the
    last one ended); the new count and the window."""
    t = LoginAttempt
    insert_ = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    expired = t.window_start <= literal(now - LOGIN_FAILURE_WINDOW, UTCDateTime())
    upsert = insert_(t).values(kind=kind, key=key, window_start=now, count=1)
    stmt = upsert.on_conflict_do_update(
        index_elements=[t.kind, t.key],
        set_={"count": case((expired, 1), else_=t.count + 1),
              "window_start": case((expired, literal(now, UTCDateTime())),
                                   else_=t.window_start)},
    ).returning(t.count, t.window_start)
    count, window_start = conn.execute(stmt).one()
    return int(count), _Slot(kind, key, ensure_utc(window_start))


def _give_back(conn: Connection, slot: _Slot) -> None:
    t = LoginAttempt
    conn.execute(update(t).where(
        t.kind == slot.kind, t.key == slot.key,
        t.window_start == literal(slot.window_start, UTCDateTime()),
        t.count > 0).values(count=t.count - 1))


@contextmanager
def _counter_transaction(session: Session) -> Iterator[Connection]:
    """Before the password check ``session`` has no transaction yet: the slot is taken in
    a short transaction of its own, committed before the (slow) check, so it is visible
    at once to every request and process and no lock is held while argon2 runs. Once
    ``session`` has a transaction (giving slots back after a success, or a caller that
    used it already) its connection is used: on SQLite it holds the database's write
    lock (BEGIN IMMEDIATE) anyway, on PostgreSQL the row locks keep the counters atomic;
    and no second pooled connection is needed per request."""
    if session.in_transaction():
        yield session.connection()
        return
    with session.get_bind().engine.begin() as conn:
        yield conn


def _prune(session: Session, now: datetime) -> None:
    """Forget counters whose window has ended (best effort, in its own transaction, so it
    never holds locks beside the counters' and a failure costs nothing)."""
    if session.in_transaction():
        return
    try:
        with session.get_bind().engine.begin() as conn:
            conn.execute(delete(LoginAttempt).where(
                LoginAttempt.window_start <= literal(now - LOGIN_FAILURE_WINDOW,
                                                     UTCDateTime())))
    except DBAPIError:  # e.g. a deadlock with another pruner: the next one tries again
        pass


def _locked(what: str, window_start: datetime, now: datetime) -> TooManyAttempts:
    free_at = window_start + LOGIN_FAILURE_WINDOW
    minutes = max(1, -int(-(free_at - now).total_seconds() // 60))
    return TooManyAttempts(
        f"too many failed logins {what}: try again in {minutes} min",
        hint="If you forgot your password, ask an operator to set a new one "
        "(rechenwerk admin user ...).")


def login_with_password(session: Session, username: str, password: str, *,
                        now: datetime, source: str, address: str | None = None) -> User:
    """Take a throttle slot for ``address`` (the client's host) and for ``username``,
    then check the password; call it before ``session`` is used in the request. The
    slots and the user's password hash are read in a short transaction of their own, so
    no transaction (on SQLite: the database's write lock) is open while argon2 runs. A
    failure adds a "login.failed" audit entry to ``session`` for operators. Raises
    TooManyAttempts (429) or Unauthenticated (one message for unknown user and wrong
    password, and the same argon2 cost, so names do not leak)."""
    where = address_key(address)
    with _counter_transaction(session) as conn:
        count, address_slot = _take(conn, "address", where, now)
        if count > LOGIN_MAX_FAILURES_PER_ADDRESS:
            raise _locked(f"from your address {where}", address_slot.window_start, now)
        count, user_slot = _take(conn, "user", username[:_KEY_LENGTH], now)
        if count > LOGIN_MAX_FAILURES:
            _give_back(conn, address_slot)  # no check ran for this address
            raise _locked(f"for {username!r}", user_slot.window_start, now)
        found = conn.execute(select(User.id, User.password_hash).where(
            User.username == username)).one_or_none()
    if count == 1:  # a new window began for this username: clear out ended ones
        _prune(session, now)
    checked_hash = found.password_hash if found else None
    user: User | None = None
    if _password_ok(checked_hash, password) and found:
        user = session.get(User, found.id)
    # Changed or deactivated meanwhile: as a wrong password.
    if user is None or not user.is_active or user.password_hash != checked_hash:
        record(session, None, "login.failed", "user", username[:64],
               {"via": source, "address": where}, at=now)
        raise Unauthenticated("wrong username or password")
    with _counter_transaction(session) as conn:
        _give_back(conn, address_slot)
        _give_back(conn, user_slot)
    return user


def _password_ok(password_hash: str | None, password: str) -> bool:
    """Exactly one argon2 verification, also without a hash (against a dummy one)."""
    ok = verify_password(password_hash or _dummy_hash(), password)
    return ok and bool(password_hash)


def authenticate_password(session: Session, username: str, password: str) -> User:
    """The active user, or Unauthenticated (one message for unknown user and wrong
    password, and one argon2 verification either way, so names do not leak). Not
    throttled: logins go through :func:`login_with_password`."""
    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    ok = _password_ok(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        raise Unauthenticated("wrong username or password")
    return user


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(
        session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id))
    )


def revoke_token(session: Session, actor: User, token_id: int, *, now: datetime) -> ApiToken:
    """Revoke a token; its owner or an operator may. Others get NotFound."""
    token = session.get(ApiToken, token_id)
    if token is None or (token.user_id != actor.id and not actor.is_operator):
        raise NotFound(f"API token {token_id} not found", field="token_id")
    if token.revoked_at is not None:
        return token
    token.revoked_at = now
    record(session, actor, "token.revoke", "api_token", token.id,
           {"user": token.user.username}, at=now)
    return token


def require_operator(user: User) -> None:
    if not user.is_operator:
        raise PermissionDenied(
            "only operators may do this", hint="Ask an operator of the centre."
        )
