"""The acceptable-use policy page: every portal page redirects here until the user has
accepted the current version (web/deps.py ``portal_user``; the rule in access/aup.py)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from rechenwerk.access.aup import accept_aup, accepted_at, current_aup
from rechenwerk.access.models import User
from rechenwerk.api.deps import get_now, get_session
from rechenwerk.errors import InvalidInput
from rechenwerk.web.deps import form_data, portal_user_before_aup
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute, _safe_next
from rechenwerk.web.session import flash_redirect

router = APIRouter(route_class=PortalRoute, include_in_schema=False)


@router.get("/aup")
def aup_page(request: Request, next: str = "/", user: User = Depends(portal_user_before_aup),
             db: Session = Depends(get_session)) -> Response:
    aup = current_aup(db)
    return render(request, "aup.html", {
        "title": "Acceptable-use policy", "section": "aup", "aup": aup,
        "accepted_at": accepted_at(db, user.id, aup.version) if aup else None,
        "next_url": _safe_next(next)})


@router.post("/aup/accept")
def aup_accept(request: Request, form: dict[str, str] = Depends(form_data),
               user: User = Depends(portal_user_before_aup),
               db: Session = Depends(get_session),
               now: datetime = Depends(get_now)) -> Response:
    raw = form.get("version", "")
    if not raw.isdigit():
        raise InvalidInput(f"version must be a whole number, got {raw!r}", field="version")
    # A version published since the page was shown: Conflict, shown as an error page.
    accept_aup(db, user, int(raw), now=now)
    return flash_redirect(request, _safe_next(form.get("next", "/") or "/"),
                          f"Thank you: you accepted the acceptable-use policy (version {raw}).")
