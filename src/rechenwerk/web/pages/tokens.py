"""Settings > API tokens: the user's tokens (name, created, last used, expiry, scope),
a form to create one (its secret shown once, on the page that answers the form) and a
revoke button per token. The services are the API's (access/security.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from rechenwerk.access import security
from rechenwerk.access.models import ApiToken, User
from rechenwerk.api.deps import get_now, get_session
from rechenwerk.errors import NotFound, RechenwerkError
from rechenwerk.web.deps import form_data, portal_user, portal_user_before_aup
from rechenwerk.web.forms import FormErrors, errors_from, number, text
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute
from rechenwerk.web.session import flash_redirect

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

DEFAULT_DAYS = 90
_SCOPES = [("full", "Full: read and change (submit jobs, proposals, ...)"),
           ("read", "Read-only: GET requests only")]


def _page(request: Request, db: Session, user: User, form: dict[str, str],
          errors: FormErrors, *, created: tuple[int, str] | None = None,
          status_code: int = 200) -> Response:
    tokens = sorted(security.list_tokens(db, user), key=lambda t: t.id, reverse=True)
    return render(request, "tokens.html", {
        "title": "API tokens", "section": "tokens", "form": form, "errors": errors,
        "tokens": tokens, "created": created, "scopes": _SCOPES,
        "max_days": security.MAX_TOKEN_DAYS, "now": get_now(request),
    }, status_code=status_code)


@router.get("/settings/tokens")
def tokens_page(request: Request, user: User = Depends(portal_user),
                db: Session = Depends(get_session)) -> Response:
    form = {"name": "", "days": str(DEFAULT_DAYS), "scope": "full"}
    return _page(request, db, user, form, FormErrors())


@router.post("/settings/tokens")
def token_create(request: Request, form: dict[str, str] = Depends(form_data),
                 user: User = Depends(portal_user), db: Session = Depends(get_session),
                 now: datetime = Depends(get_now)) -> Response:
    errors = FormErrors()
    name = text(form, "name")
    if not name:
        errors.add("name", "Name is required (e.g. the machine or script using it)")
    days = number(form, "days", errors, label="Expiry", integer=True, minimum=1)
    if days is not None and days > security.MAX_TOKEN_DAYS:
        errors.add("days", f"Expiry must be at most {security.MAX_TOKEN_DAYS} days")
    scope = form.get("scope", "")
    if scope not in security.TOKEN_SCOPES:
        errors.add("scope", "Choose full or read-only")
    if not errors:
        try:
            token, secret = security.create_token(
                db, user, name=name, now=now, expires_at=now + timedelta(days=int(days)),
                scope=scope)
        except RechenwerkError as exc:
            db.rollback()
            errors = errors_from(exc, fields={"name", "days", "scope"})
    if errors:
        return _page(request, db, user, form, errors, status_code=422)
    # The secret is in this answer only: never stored, never shown again.
    blank = {"name": "", "days": str(DEFAULT_DAYS), "scope": "full"}
    response = _page(request, db, user, blank, FormErrors(), created=(token.id, secret),
                     status_code=201)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/settings/tokens/{token_id}/revoke")
def token_revoke(request: Request, token_id: int,
                 user: User = Depends(portal_user_before_aup),
                 db: Session = Depends(get_session),
                 now: datetime = Depends(get_now)) -> Response:
    # Revoking is never gated by the AUP (as in the API). This page is the user's own
    # tokens, operators included: another user's token is "not found" here.
    owned = db.get(ApiToken, token_id)
    if owned is None or owned.user_id != user.id:
        raise NotFound(f"API token {token_id} not found", field="token_id")
    token = security.revoke_token(db, user, token_id, now=now)
    return flash_redirect(request, "/settings/tokens",
                          f"Token {token.name!r} ({token.prefix}...) revoked: it no longer works.")
