"""Login (username + password, verified by the platform's password check) and logout."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from rechenwerk.access.models import User
from rechenwerk.access.oidc.flows import password_login_allowed
from rechenwerk.access.security import login_with_password
from rechenwerk.api.deps import get_clock, get_session, settings_of
from rechenwerk.errors import Unauthenticated
from rechenwerk.web.deps import form_data, optional_user
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute, _safe_next
from rechenwerk.web.session import end_session, flash_redirect, start_user_session

router = APIRouter(route_class=PortalRoute, include_in_schema=False)


@router.get("/login")
def login_form(
    request: Request, next: str = "/", user: User | None = Depends(optional_user)
) -> Response:
    if user is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(
        request, "login.html",
        {"title": "Log in", "next_url": _safe_next(next), "username": "", "error": None,
         "oidc_providers": settings_of(request).oidc_providers},
    )


@router.post("/login")
def login(
    request: Request,
    form: dict[str, str] = Depends(form_data),
    db: Session = Depends(get_session),
) -> Response:
    username = form.get("username", "").strip()
    password = form.get("password", "")
    next_url = _safe_next(form.get("next", "/") or "/")
    try:
        if not username or not password:
            raise Unauthenticated("enter your username and password")
        # The throttle counts in its own transaction; a failure also adds a
        # "login.failed" audit entry, committed because the page is returned, not raised.
        user = login_with_password(
            db, username, password, now=get_clock(request).now(), source="portal",
            address=request.client.host if request.client else None)
        password_login_allowed(settings_of(request), user)
    except Unauthenticated as exc:
        return render(
            request, "login.html",
            {"title": "Log in", "next_url": next_url, "username": username,
             "error": exc.message[:1].upper() + exc.message[1:] + ".",
             "oidc_providers": settings_of(request).oidc_providers},
            status_code=exc.http_status,
        )
    start_user_session(request, db, user)  # a new server-side session record
    return RedirectResponse(next_url, status_code=303)


@router.post("/logout")
def logout(request: Request) -> Response:
    end_session(request)
    return flash_redirect(request, "/login",
                          "You have been logged out.", kind="info")
