"""Portal dependencies: the logged-in user (from the signed session cookie), the clock,
the submitted form. The database session is the API's (one transaction per request)."""

from __future__ import annotations

from datetime import datetime

from fastapi import Depends
from sqlalchemy.orm import Session
from starlette.requests import Request

from rechenwerk.access.models import User
from rechenwerk.api.deps import get_now, get_session, settings_of
from rechenwerk.errors import PermissionDenied
from rechenwerk.web.routing import LoginRequired
from rechenwerk.web.session import end_session, load_session, password_fingerprint


def now_of(request: Request) -> datetime:
    return get_now(request)


def optional_user(request: Request, db: Session = Depends(get_session)) -> User | None:
    """The logged-in, active user, or None (the session is dropped when the account was
    deactivated or its password changed since login)."""
    settings = settings_of(request)
    sess = load_session(request, settings)
    if sess.uid is None:
        return None
    user = db.get(User, sess.uid)
    if (
        user is None
        or not user.is_active
        or password_fingerprint(user.password_hash) != sess.pw
    ):
        end_session(request)
        return None
    request.state.portal_user = user
    return user


def portal_user(user: User | None = Depends(optional_user)) -> User:
    if user is None:
        raise LoginRequired("please log in")
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
