"""Portal sessions: a signed, HttpOnly cookie holding the user id and a CSRF token.

The cookie is signed (not encrypted) with ``settings.secret_key`` through itsdangerous and
expires after ``SESSION_MAX_AGE_S``. Every state-changing form carries the session's CSRF
token in a hidden ``csrf_token`` field (htmx requests send it as ``X-CSRF-Token``); a POST
without the right token is refused. Anonymous visitors get a session too (``uid`` None),
so that the login form itself is CSRF-protected.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from rechenwerk.config import Settings

COOKIE_NAME = "rw_session"
FLASH_COOKIE = "rw_flash"
SESSION_MAX_AGE_S = 12 * 3600
_SALT = "rechenwerk.portal.session.v1"
_FLASH_SALT = "rechenwerk.portal.flash.v1"


@dataclass(slots=True)
class PortalSession:
    uid: int | None = None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    # Short fingerprint of the password hash at login: a password change ends old sessions.
    pw: str = ""
    dirty: bool = False

    def to_payload(self) -> dict[str, Any]:
        return {"uid": self.uid, "csrf": self.csrf, "pw": self.pw}


def _serializer(settings: Settings, salt: str = _SALT) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=salt)


def load_session(request: Request, settings: Settings) -> PortalSession:
    """The request's session (cached on ``request.state``); a fresh anonymous one when the
    cookie is missing, tampered with or expired."""
    cached = getattr(request.state, "portal_session", None)
    if isinstance(cached, PortalSession):
        return cached
    raw = request.cookies.get(COOKIE_NAME)
    sess: PortalSession | None = None
    if raw:
        try:
            data = _serializer(settings).loads(raw, max_age=SESSION_MAX_AGE_S)
            if isinstance(data, dict) and isinstance(data.get("csrf"), str):
                uid = data.get("uid")
                sess = PortalSession(
                    uid=uid if isinstance(uid, int) else None,
                    csrf=data["csrf"],
                    pw=str(data.get("pw", "")),
                )
        except BadSignature:
            sess = None
    if sess is None:
        sess = PortalSession(dirty=True)
    request.state.portal_session = sess
    return sess


def password_fingerprint(password_hash: str | None) -> str:
    if not password_hash:
        return ""
    import hashlib

    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def start_user_session(request: Request, settings: Settings, uid: int, pw_hash: str) -> None:
    """After a successful login: a new session (new CSRF token, fixation-safe)."""
    sess = PortalSession(uid=uid, pw=password_fingerprint(pw_hash), dirty=True)
    request.state.portal_session = sess


def end_session(request: Request) -> None:
    request.state.portal_session = PortalSession(dirty=True)


def save_session(request: Request, response: Response, settings: Settings) -> None:
    """Write the cookie if the session changed during this request."""
    sess = getattr(request.state, "portal_session", None)
    if not isinstance(sess, PortalSession) or not sess.dirty:
        return
    token = _serializer(settings).dumps(sess.to_payload())
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=SESSION_MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def csrf_ok(sess: PortalSession, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(sess.csrf, str(submitted))


# --- flash messages: one signed cookie read once --------------------------------------


def set_flash(response: Response, settings: Settings, kind: str, message: str) -> None:
    token = _serializer(settings, _FLASH_SALT).dumps({"kind": kind, "message": message})
    response.set_cookie(FLASH_COOKIE, token, max_age=120, httponly=True, samesite="lax", path="/")


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
