"""Portal sessions: an HttpOnly cookie holding only a random session id; the server-side
record (``access/portal_sessions.py``, table ``portal_sessions``) decides.

The cookie is signed with ``settings.secret_key`` (itsdangerous), but the signature only
spares the database look-ups of garbage: a cookie is a logged-in session only while its
record is valid (not revoked by logout or a password change, not idle longer than
``settings.session_idle_s``, not older than ``settings.session_max_age_s``). Every
state-changing form carries the session's CSRF token in a hidden ``csrf_token`` field
(htmx requests send it as ``X-CSRF-Token``): HMAC-SHA256 of the server's key and the
record's own CSRF secret, so it is not in, nor derivable from, the cookie. Anonymous
visitors get a cookie-only session (a random nonce, no record), so that the login form
itself is CSRF-protected; login replaces it with a new session (fixation-safe).

Every ``PortalRoute`` resolves the session once per request (``resolve_session``) and
checks the CSRF token of every POST (``csrf_guard``) in the request's own transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from rechenwerk.access.models import PortalSessionRecord, User
from rechenwerk.access.portal_sessions import (
    end_portal_session,
    resume_portal_session,
    start_portal_session,
)
from rechenwerk.api.deps import get_now, get_session, settings_of
from rechenwerk.config import Settings
from rechenwerk.errors import PermissionDenied

COOKIE_NAME = "rw_session"
FLASH_COOKIE = "rw_flash"
_SALT = "rechenwerk.portal.session.v2"
_FLASH_SALT = "rechenwerk.portal.flash.v1"


@dataclass(slots=True)
class PortalSession:
    """What the cookie says: a login's random id (``sid``), or an anonymous nonce."""

    sid: str | None = None
    anon: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    dirty: bool = False
    resolved: bool = False  # the record was looked up in this request
    record: PortalSessionRecord | None = None
    user: User | None = None

    def to_payload(self) -> dict[str, Any]:
        return {"sid": self.sid} if self.sid else {"anon": self.anon}


def _serializer(settings: Settings, salt: str = _SALT) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=salt)


def load_session(request: Request, settings: Settings) -> PortalSession:
    """The request's session as the cookie says (cached on ``request.state``); a fresh
    anonymous one when the cookie is missing, tampered with or too old. Not yet checked
    against its record: see :func:`resolve_session`."""
    cached = getattr(request.state, "portal_session", None)
    if isinstance(cached, PortalSession):
        return cached
    raw = request.cookies.get(COOKIE_NAME)
    sess: PortalSession | None = None
    if raw:
        try:
            data = _serializer(settings).loads(raw, max_age=settings.session_max_age_s)
        except BadSignature:
            data = None
        if isinstance(data, dict) and isinstance(data.get("sid"), str):
            sess = PortalSession(sid=data["sid"])
        elif isinstance(data, dict) and isinstance(data.get("anon"), str):
            sess = PortalSession(anon=data["anon"], resolved=True)
    if sess is None:
        sess = PortalSession(dirty=True, resolved=True)
    request.state.portal_session = sess
    return sess


def resolve_session(request: Request, db: Session = Depends(get_session)) -> PortalSession:
    """The request's session checked against its record (once per request): a logged-in
    session whose record is no longer valid becomes a fresh anonymous one."""
    settings = settings_of(request)
    sess = load_session(request, settings)
    if sess.resolved:
        return sess
    found = resume_portal_session(db, sess.sid or "", now=get_now(request),
                                  idle_s=settings.session_idle_s)
    if found is None:
        sess = PortalSession(dirty=True, resolved=True)
        request.state.portal_session = sess
        return sess
    sess.record, sess.user = found
    sess.resolved = True
    return sess


def start_user_session(request: Request, db: Session, user: User) -> None:
    """After a successful login: a new session with a new record and CSRF secret (the
    old one, if any, is ended: fixation-safe)."""
    settings = settings_of(request)
    now = get_now(request)
    old = getattr(request.state, "portal_session", None)
    if isinstance(old, PortalSession) and old.record is not None:
        end_portal_session(old.record, now=now)
    record, raw = start_portal_session(db, user, now=now,
                                       max_age_s=settings.session_max_age_s)
    request.state.portal_session = PortalSession(sid=raw, dirty=True, resolved=True,
                                                 record=record, user=user)


def end_session(request: Request) -> None:
    """Logout: the record is revoked in the request's transaction (a copied cookie no
    longer works) and the visitor gets a fresh anonymous session."""
    sess = getattr(request.state, "portal_session", None)
    if isinstance(sess, PortalSession) and sess.record is not None:
        end_portal_session(sess.record, now=get_now(request))
    request.state.portal_session = PortalSession(dirty=True, resolved=True)


def save_session(request: Request, response: Response, settings: Settings) -> None:
    """Write the cookie if the session changed during this request."""
    sess = getattr(request.state, "portal_session", None)
    if not isinstance(sess, PortalSession) or not sess.dirty:
        return
    token = _serializer(settings).dumps(sess.to_payload())
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=settings.session_max_age_s,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def csrf_token(sess: PortalSession, settings: Settings) -> str:
    """The session's CSRF token: HMAC of the server's key and the record's CSRF secret
    (an anonymous session's nonce for the login form)."""
    material = ("session:" + sess.record.csrf_secret if sess.record is not None
                else "anon:" + sess.anon)
    return hmac.new(settings.secret_key.encode(), material.encode(),
                    hashlib.sha256).hexdigest()


def csrf_ok(sess: PortalSession, settings: Settings, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(csrf_token(sess, settings),
                                                   str(submitted))


async def csrf_guard(request: Request,
                     sess: PortalSession = Depends(resolve_session)) -> None:
    """Every PortalRoute's first dependency: a POST (any non-safe method) must carry this
    session's CSRF token; 403 otherwise."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    token: Any = request.headers.get("x-csrf-token")
    if not token:
        form = await request.form()
        token = form.get("csrf_token")
    if not csrf_ok(sess, settings_of(request), token if isinstance(token, str) else None):
        raise PermissionDenied(
            "the form's security token is missing or out of date",
            hint="Reload the page and submit the form again (sessions end after "
            f"{settings_of(request).session_idle_s // 60} minutes without activity, "
            "at logout or when your password changes).")


# --- flash messages: one signed cookie read once --------------------------------------


def set_flash(response: Response, settings: Settings, kind: str, message: str) -> None:
    token = _serializer(settings, _FLASH_SALT).dumps({"kind": kind, "message": message})
    response.set_cookie(FLASH_COOKIE, token, max_age=120, httponly=True, samesite="lax", path="/")


def flash_redirect(request: Request, url: str, message: str, kind: str = "success") -> Response:
    """The answer to a form that did its work: see ``url`` (303), with ``message`` shown
    once there."""
    response = RedirectResponse(url, status_code=303)
    set_flash(response, settings_of(request), kind, message)
    return response


def pop_flash(request: Request, settings: Settings) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    request.state.clear_flash = True
    try:
        data = _serializer(settings, _FLASH_SALT).loads(raw, max_age=300)
    except BadSignature:
        return None
    if isinstance(data, dict) and "message" in data:
        return {"kind": str(data.get("kind", "info")), "message": str(data["message"])}
    return None
