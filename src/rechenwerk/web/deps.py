"""Portal dependencies: the logged-in user (from the session's server-side record), the clock,
the submitted form. The database session is the API's (one transaction per request)."""

from __future__ import annotations

from datetime import datetime

from fastapi import Depends
from sqlalchemy.orm import Session
from starlette.requests import Request

from rechenwerk.access.aup import pending_aup_version
from rechenwerk.access.models import User
from rechenwerk.api.deps import get_now, get_session
from rechenwerk.errors import PermissionDenied
from rechenwerk.web.routing import AupRequired, LoginRequired
from rechenwerk.web.session import PortalSession, resolve_session


def now_of(request: Request) -> datetime:
    return get_now(request)


def optional_user(sess: PortalSession = Depends(resolve_session)) -> User | None:
    """The logged-in, active user of a valid server-side session, or None (the session
    ends when it was revoked, expired or idle, or the account was deactivated or its
    password changed since login)."""
    return sess.user


def portal_user_before_aup(user: User | None = Depends(optional_user)) -> User:
    """The logged-in user, whether or not they accepted the AUP (the AUP page itself)."""
    if user is None:
        raise LoginRequired("please log in")
    return user


def portal_user(user: User = Depends(portal_user_before_aup),
                db: Session = Depends(get_session)) -> User:
    """The logged-in user who accepted the centre's current AUP: the portal's one AUP
    gate (access/aup.py); otherwise every page redirects to ``/aup``."""
    if pending_aup_version(db, user.id) is not None:
        raise AupRequired("please accept the acceptable-use policy")
    return user


def operator_user(user: User = Depends(portal_user)) -> User:
    if not user.is_operator:
        raise PermissionDenied(
            "this page is for the centre's operators",
            hint="Ask an operator if you need this information.",
        )
    return user


def reviewer_user(user: User = Depends(portal_user)) -> User:
    if not (user.is_reviewer or user.is_operator):
        raise PermissionDenied(
            "this page is for reviewers", hint="Operators give the reviewer role."
        )
    return user


async def form_data(request: Request) -> dict[str, str]:
    """The submitted form as plain strings (file uploads are ignored)."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
