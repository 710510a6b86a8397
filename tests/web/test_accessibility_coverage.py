"""The accessibility check covers every page (issue 18 "Done when"): each GET route of
the portal's router is a page axe checks in test_accessibility_browser.py (a URL of
``PAGES`` or a route of ``LINKED``, or the login page) or is named in its ``EXCLUDED``
with the reason. A new page route that is in neither fails here, without a browser."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from fastapi.routing import APIRoute
from starlette.routing import Match
from test_accessibility_browser import EXCLUDED, LINKED, PAGES

CHECKED_ALONE = {"/login"}  # test_login_page_meets_wcag_21_aa, before anyone logs in


def _flat(routes: list[Any]) -> list[APIRoute]:
    out: list[APIRoute] = []
    for r in routes:
        inner = getattr(r, "original_router", None)  # FastAPI's _IncludedRouter
        if inner is not None:
            out.extend(_flat(inner.routes))
        elif isinstance(r, APIRoute):
            out.append(r)
    return out


@lru_cache(maxsize=1)
def page_routes() -> tuple[APIRoute, ...]:
    """The portal's GET routes, in matching order."""
    from rechenwerk.web.router import router

    return tuple(r for r in _flat(router.routes) if "GET" in (r.methods or ()))


def route_of(url: str) -> str | None:
    """The path of the portal route a local URL reaches (the first that matches, as in
    the app), None when none does."""
    path = urlsplit(url).path
    scope = {"type": "http", "method": "GET", "path": path, "root_path": ""}
    for route in page_routes():
        if route.matches(scope)[0] is Match.FULL:
            return route.path
    return None


def test_every_get_page_route_is_checked_or_excluded_with_a_reason() -> None:
    routes = {r.path for r in page_routes()}
    assert len(routes) > 40  # the router was read
    checked = set(CHECKED_ALONE)
    for user, urls in PAGES.items():
        for url in urls:
            route = route_of(url)
            assert route is not None, f"{user}'s page {url} is no portal route"
            checked.add(route)
    for user, links in LINKED.items():
        assert user in PAGES, f"LINKED names {user}, who has no PAGES entry"
        for source, target in links:
            assert target in routes, f"{user}: LINKED route {target} is no portal route"
            assert source in routes or route_of(source) is not None, source
            checked.add(target)
    missing = sorted(routes - checked - set(EXCLUDED))
    assert not missing, ("GET routes no accessibility check visits: add them to PAGES or "
                         "LINKED in test_accessibility_browser.py, or to EXCLUDED with the "
                         f"reason: {missing}")
    stale = sorted(set(EXCLUDED) - routes)
    assert not stale, f"EXCLUDED names routes the portal no longer has: {stale}"
    both = sorted(set(EXCLUDED) & checked)
    assert not both, f"routes both checked and excluded: {both}"
    assert all(reason.strip() for reason in EXCLUDED.values())


def test_route_of_resolves_as_the_app_does() -> None:
    assert route_of("/proposals/new") == "/proposals/new"  # not /proposals/{proposal_id}
    assert route_of("/proposals/12?tab=x#reviews") == "/proposals/{proposal_id}"
    assert route_of("/projects/new") == "/projects/new"
    assert route_of("/no/such/page") is None
