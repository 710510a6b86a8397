"""Federated sign-in in the portal (access/oidc/): "Sign in with <provider>" starts the
authorization code flow, the provider sends the browser back to the callback, which
checks it and starts a portal session. A signed-in user may link a provider account to
theirs (``/settings/sign-in``); that session is the proof of the account.

The state also goes into a short-lived cookie of the browser that started the sign-in:
a callback URL carried to another browser (login CSRF) does not match there.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from rechenwerk.access.models import User
from rechenwerk.access.oidc import flows
from rechenwerk.access.oidc.models import OidcIdentity
from rechenwerk.api.deps import get_clock, get_session, settings_of
from rechenwerk.errors import Unauthenticated
from rechenwerk.web.deps import optional_user, portal_user
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute, _safe_next
from rechenwerk.web.session import set_flash, start_user_session

router = APIRouter(route_class=PortalRoute, include_in_schema=False)
log = logging.getLogger("rechenwerk.oidc")

STATE_COOKIE = "rw_oidc_state"
_COOKIE_PATH = "/login/oidc"


def redirect_uri(request: Request) -> str:
    base = settings_of(request).public_url or str(request.base_url)
    return base.rstrip("/") + flows.CALLBACK_PATH


def _start(request: Request, db: Session, name: str, next_url: str,
           link_user: User | None) -> Response:
    provider = flows.provider_named(settings_of(request), name)
    url, state = flows.start_web_sign_in(
        db, provider, redirect_uri=redirect_uri(request), next_url=_safe_next(next_url),
        link_user=link_user, now=get_clock(request).now())
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(STATE_COOKIE, state, max_age=int(flows.WEB_SIGN_IN_TTL.total_seconds()),
                        path=_COOKIE_PATH, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")
    return response


@router.get("/login/oidc/callback")
def callback(request: Request, state: str = "", code: str = "", error: str = "",
             error_description: str = "", current: User | None = Depends(optional_user),
             db: Session = Depends(get_session)) -> Response:
    now = get_clock(request).now()
    if error:
        log.warning("oidc sign-in refused: reason=provider answered %s: %s", error,
                    error_description)
        if state:  # the sign-in of this state is over
            flows.discard_web_sign_in(db, state=state)
            db.commit()
        raise Unauthenticated(f"the sign-in provider did not sign you in ({error})",
                              hint=error_description or "Start the sign-in again.")
    cookie = request.cookies.get(STATE_COOKIE, "")
    if not state or not code:
        raise Unauthenticated("the sign-in answer is incomplete (no state or code)",
                              hint="Start the sign-in again.")
    taken = flows.take_web_sign_in(db, state=state, now=now)
    db.commit()  # the state is used up now, whatever happens next
    if not cookie or not hmac.compare_digest(cookie, state):
        log.warning("oidc sign-in refused: reason=state cookie missing or different "
                    "(another browser, or cookies blocked)")
        raise Unauthenticated("this sign-in was started in another browser",
                              hint="Start the sign-in again in this browser.")
    if taken.link_user_id is not None and (current is None
                                           or current.id != taken.link_user_id):
        # The proof of the account is the session that asked to link: still the same?
        log.warning("oidc sign-in refused: reason=linking session ended or changed")
        raise Unauthenticated("the account to link is no longer signed in here",
                              hint="Log in to it again, then link from Settings -> Sign-in.")
    done = flows.finish_web_sign_in(db, settings_of(request), taken, code=code,
                                    redirect_uri=redirect_uri(request), now=now)
    user = done.signed_in.user
    log.info("oidc sign-in: user=%s provider=%s new_user=%s linked=%s", user.username,
             done.signed_in.identity.provider, done.signed_in.created, done.linked)
    start_user_session(request, db, user)
    response = RedirectResponse(done.next_url or "/", status_code=303)
    response.delete_cookie(STATE_COOKIE, path=_COOKIE_PATH)
    if done.linked:
        set_flash(response, settings_of(request), "info",
                  f"Your account is now linked to {done.signed_in.identity.provider}.")
    return response


@router.get("/login/oidc/{name}")
def start(request: Request, name: str, next: str = "/",
          user: User | None = Depends(optional_user),
          db: Session = Depends(get_session)) -> Response:
    if user is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _start(request, db, name, next, None)


@router.post("/login/oidc/{name}/link")
def link(request: Request, name: str, user: User = Depends(portal_user),
         db: Session = Depends(get_session)) -> Response:
    return _start(request, db, name, "/settings/sign-in", user)


@router.get("/settings/sign-in")
def sign_in_settings(request: Request, user: User = Depends(portal_user),
                     db: Session = Depends(get_session)) -> Response:
    identities = list(db.scalars(select(OidcIdentity).where(
        OidcIdentity.user_id == user.id).order_by(OidcIdentity.id)))
    linked = {i.provider for i in identities}
    return render(request, "sign_in_settings.html", {
        "title": "Sign-in", "section": "", "identities": identities,
        "providers": [p for p in settings_of(request).oidc_providers
                      if p.name not in linked]})
