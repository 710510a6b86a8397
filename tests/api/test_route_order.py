"""No route is shadowed by another: the app lists the hot routers first (matching is
linear), so this guards that reordering never sends a request to the wrong handler."""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import Match, Route

from rechenwerk.app import create_app
from rechenwerk.config import Settings

SAMPLES = {"int": "7", "path": "a/b.txt", "float": "1.5", "uuid": "0" * 32}


def _concrete(path: str) -> str:
    def fill(m: re.Match[str]) -> str:
        _, _, convertor = m.group(1).partition(":")
        return SAMPLES.get(convertor, "zz-sample")
    return re.sub(r"\{([^}]+)\}", fill, path)


def _flat(routes: list[Any]) -> list[Route]:
    """The routes in matching order (FastAPI keeps an included router as one entry)."""
    out: list[Route] = []
    for r in routes:
        inner = getattr(r, "original_router", None)  # FastAPI's _IncludedRouter
        if inner is not None:
            out.extend(_flat(inner.routes))
        elif isinstance(r, Route):
            out.append(r)
    return out


def test_every_route_is_reached_by_its_own_paths() -> None:
    app = create_app(Settings(scheduler_enabled=False))
    routes = _flat(app.router.routes)
    assert len(routes) > 50
    shadowed = []
    for route in routes:
        for method in sorted(route.methods or {"GET"}):
            path = _concrete(route.path)
            scope = {"type": "http", "method": method, "path": path, "root_path": ""}
            first = next(r for r in routes if r.matches(scope)[0] is Match.FULL)
            if first is not route and first.path != route.path:
                shadowed.append(f"{method} {route.path} is taken by {first.path}")
    assert shadowed == []
