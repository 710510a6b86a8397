"""How portal requests are handled: CSRF check on every POST, login redirect, errors as
HTML pages with the right status (the JSON API keeps its problem responses), and the
session cookie written back."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import Depends
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from rechenwerk.api.deps import rollback_request, settings_of
from rechenwerk.errors import RechenwerkError, Unauthenticated
from rechenwerk.web.rendering import render
from rechenwerk.web.session import FLASH_COOKIE, csrf_guard, load_session, save_session


class LoginRequired(Unauthenticated):
    """Raised by portal dependencies when no user is logged in: becomes a redirect."""


class AupRequired(RechenwerkError):
    """Raised by ``portal_user`` while the user has not accepted the current AUP:
    becomes a redirect to the AUP page (access/aup.py)."""


def _safe_next(path: str) -> str:
    # Only local paths: never redirect to another site after login.
    if not path.startswith("/") or path.startswith("//"):
        return "/"
    return path


def login_redirect(request: Request) -> Response:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    if request.method != "GET":  # a form posted after the session ended: back to its page
        referer = request.headers.get("referer", "")
        base = str(request.base_url).rstrip("/")
        target = referer[len(base):] if referer.startswith(base + "/") else "/"
    url = "/login?next=" + quote(_safe_next(target), safe="")
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def aup_redirect(request: Request) -> Response:
    target = request.url.path + ("?" + request.url.query if request.url.query else "")
    if request.method != "GET":
        target = "/"
    url = "/aup?next=" + quote(_safe_next(target), safe="")
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def error_page(request: Request, exc: RechenwerkError) -> Response:
    return render(
        request,
        "error.html",
        {
            "title": exc.title,
            "error_title": exc.title,
            "status": exc.http_status,
            "message": exc.message,
            "hint": exc.hint,
        },
        status_code=exc.http_status,
    )


class PortalRoute(APIRoute):
    """APIRoute for HTML pages: the session resolved and the CSRF token of every POST
    checked (``csrf_guard``, the route's first dependency), login redirects and HTML
    error pages."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        dependencies = [Depends(csrf_guard), *(kwargs.pop("dependencies", None) or [])]
        super().__init__(path, endpoint, dependencies=dependencies, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            settings = settings_of(request)
            load_session(request, settings)
            response: Response
            try:
                response = await original(request)
            except LoginRequired:
                response = login_redirect(request)
            except AupRequired:
                rollback_request(request)
                response = aup_redirect(request)
            except RechenwerkError as exc:
                # The error becomes an ordinary page: never commit what came before it.
                rollback_request(request)
                response = error_page(request, exc)
                # Rendering may have reloaded expired objects (the user, for the menu) in a
                # new transaction; end it, or SQLite's write lock stays with this request.
                db = getattr(request.state, "db_session", None)
                if db is not None:
                    db.close()
            save_session(request, response, settings)
            if getattr(request.state, "clear_flash", False):
                response.delete_cookie(FLASH_COOKIE, path="/")
            return response

        return handler
