"""The context every portal page gets: the user, the navigation for the user's roles, the
CSRF token and a flash message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from rechenwerk.api.deps import settings_of
from rechenwerk.web.session import csrf_token, load_session, pop_flash


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    href: str
    section: str  # matched against the page's ``section`` to highlight the active item


def nav_for(user: Any | None) -> list[NavItem]:
    """Navigation items for the user's roles (operators and reviewers see more)."""
    if user is None:
        return []
    items = [
        NavItem("Dashboard", "/", "dashboard"),
        NavItem("Jobs", "/jobs", "jobs"),
        NavItem("Submit job", "/jobs/new", "submit"),
        NavItem("Notebooks", "/sessions", "notebooks"),  # interactive sessions, issue 20
        NavItem("Proposals", "/proposals", "proposals"),
        NavItem("Reservations", "/reservations", "reservations"),  # issue 16
        NavItem("Support", "/support", "support"),  # issue 19
    ]
    if getattr(user, "is_reviewer", False):
        items.append(NavItem("Reviews", "/reviews", "reviews"))
    if getattr(user, "is_operator", False):
        items += [
            NavItem("Cluster", "/ops/cluster", "cluster"),
            NavItem("Queue", "/ops/queue", "queue"),
            NavItem("Directory", "/ops/projects", "directory"),
            NavItem("Calls & awards", "/ops/calls", "calls"),
            NavItem("Audit log", "/ops/audit", "audit"),
            NavItem("Mail", "/ops/notifications", "outbox"),
        ]
    items.append(NavItem("Reports", "/reports", "reports"))
    items.append(NavItem("API tokens", "/settings/tokens", "tokens"))  # under Settings
    return items




def base_context(request: Request) -> dict[str, Any]:
    settings = settings_of(request)
    sess = load_session(request, settings)
    user = sess.user  # None unless this request resolved a valid session
    return {
        "request": request,
        "user": user,
        "nav": nav_for(user),
        "csrf_token": csrf_token(sess, settings),
        "flash": pop_flash(request, settings),
        "section": "",
        "path": request.url.path,
    }
