"""Portal sessions: a server-side record per login, so a session can be ended.

The portal's cookie carries only a random id (``SESSION_ID_BYTES`` bytes); the database
keeps its SHA-256, never the id itself, so a copy of the table logs nobody in. The record
decides: a session is valid while it is not revoked (logout, a password change, the
user's deactivation), not past its absolute expiry (``expires_at``, set at login) and
not idle for longer than the idle timeout (``last_seen_at``, refreshed at most once per
``LAST_SEEN_RESOLUTION`` to spare a write per request). Each record has its own CSRF
secret; the portal derives the form token from it and the server's key.

Only users with a portal password get a session: an account without one (e.g. the first
operator, created for API tokens) cannot be logged in to the portal at all.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from rechenwerk.access.models import PortalSessionRecord, User
from rechenwerk.access.oidc.models import OidcIdentity
from rechenwerk.errors import Unauthenticated

SESSION_ID_BYTES = 32  # 256 bits of randomness in the cookie
LAST_SEEN_RESOLUTION = timedelta(minutes=1)
_MAX_ID_LENGTH = 128  # a longer "id" from a cookie is not looked up


def hash_session_id(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def password_fingerprint(password_hash: str | None) -> str:
    """16 hex digits of the SHA-256 of the password hash ("" without a password)."""
    if not password_hash:
        return ""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def start_portal_session(session: Session, user: User, *, now: datetime,
                         max_age_s: float) -> tuple[PortalSessionRecord, str]:
    """A new session for ``user`` (whose password, or sign-in at an OpenID Provider, the
    caller checked); returns the record and the raw id for the cookie (never stored). The
    user's ended sessions are deleted. An account with neither a password nor a linked
    provider identity (e.g. an operator bootstrapped for API tokens) gets none."""
    federated = session.scalar(select(OidcIdentity.id).where(
        OidcIdentity.user_id == user.id).limit(1)) is not None
    if not user.is_active or not (user.password_hash or federated):
        raise Unauthenticated(
            "this account cannot log in to the portal",
            hint="An operator sets a portal password with `rechenwerk admin user password "
            "NAME`; deactivated accounts cannot log in.")
    session.execute(delete(PortalSessionRecord).where(
        PortalSessionRecord.user_id == user.id,
        or_(PortalSessionRecord.revoked_at.is_not(None),
            PortalSessionRecord.expires_at <= now)))
    raw = secrets.token_urlsafe(SESSION_ID_BYTES)
    record = PortalSessionRecord(
        sid_hash=hash_session_id(raw), user_id=user.id,
        csrf_secret=secrets.token_hex(32),
        password_fp=password_fingerprint(user.password_hash),
        created_at=now, last_seen_at=now,
        expires_at=now + timedelta(seconds=max_age_s), revoked_at=None)
    session.add(record)
    session.flush()
    return record, raw


def resume_portal_session(session: Session, raw: str, *, now: datetime,
                          idle_s: float) -> tuple[PortalSessionRecord, User] | None:
    """The valid session with id ``raw`` and its active user, or None (unknown, revoked,
    expired, idle too long, user deactivated or password changed since login)."""
    if not raw or len(raw) > _MAX_ID_LENGTH:
        return None
    row = session.execute(
        select(PortalSessionRecord, User)
        .join(User, User.id == PortalSessionRecord.user_id)
        .where(PortalSessionRecord.sid_hash == hash_session_id(raw))
    ).one_or_none()
    if row is None:
        return None
    record, user = row
    if (record.revoked_at is not None or record.expires_at <= now
            or record.last_seen_at + timedelta(seconds=idle_s) <= now):
        return None
    # A federated user (OIDC) has no password: "" then, and a password set later ends it.
    if (not user.is_active
            or password_fingerprint(user.password_hash) != record.password_fp):
        record.revoked_at = now
        return None
    if now - record.last_seen_at >= LAST_SEEN_RESOLUTION:
        record.last_seen_at = now
    return record, user


def end_portal_session(record: PortalSessionRecord, *, now: datetime) -> None:
    """Logout: the record is revoked, so a copy of the cookie no longer works."""
    if record.revoked_at is None:
        record.revoked_at = now


def end_user_sessions(session: Session, user_id: int, *, now: datetime) -> int:
    """Revoke every open portal session of the user (password change, deactivation);
    returns how many."""
    result = session.execute(
        update(PortalSessionRecord)
        .where(PortalSessionRecord.user_id == user_id,
               PortalSessionRecord.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session="fetch"))
    return int(getattr(result, "rowcount", 0) or 0)
