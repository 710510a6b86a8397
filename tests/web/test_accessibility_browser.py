"""WCAG 2.1 A and AA on every page of every role: axe-core (npm, ``tests/web/axe``) runs
in Chromium on each page the demo's PI, member, reviewer, operator and pay-per-use
customer reach (``PAGES``, and the pages with an id in their URL through a link,
``LINKED``), and on the login page; no violation of those levels is allowed.
test_accessibility_coverage.py fails when a GET route of the portal is neither checked
here nor ``EXCLUDED`` with a reason. A keyboard-only walk checks that the skip link and
the main flow's controls are reachable with Tab (the full walks:
test_keyboard_walks_browser.py)."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import login

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("portal-browser")]

AXE = Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

COMMON = ["/", "/jobs", "/proposals", "/reservations", "/reports", "/settings",
          "/settings/tokens", "/settings/sign-in", "/aup", "/projects/new", "/support",
          "/support/new", "/sessions"]
PAGES: dict[str, list[str]] = {
    "greta": [*COMMON, "/jobs/new", "/proposals/new", "/projects/nordlicht-llm",
              "/jobs?state=completed", "/awards/1"],  # award 1: nordlicht-llm's
    "jonas": [*COMMON, "/jobs/new", "/projects/nordlicht-llm"],
    "amelie": ["/proposals?state=draft"],  # her draft, for the withdraw page
    "lucia": [*COMMON, "/reviews"],
    "sofia": [*COMMON, "/jobs/new", "/projects/alpenwerk-cfd"],  # a pay-per-use company
    "operator": [*COMMON, "/ops/cluster", "/ops/queue", "/ops/calls", "/ops/audit",
                 "/ops/notifications", "/ops/projects", "/ops/users", "/ops/organizations",
                 "/projects/nordlicht-llm", "/reports/funder", "/reports/yearly",
                 "/awards/1", "/award-changes", "/report-tasks?state=open",
                 "/proposals?overdue=true"],
}
# Pages whose URL holds an id, reached by a link: (the page with the link, the route of
# the linked page). The page with the link is a URL above or a route found before.
LINKED: dict[str, list[tuple[str, str]]] = {
    "greta": [("/jobs", "/jobs/{job_id}"), ("/proposals", "/proposals/{proposal_id}"),
              ("/support", "/support/{request_id}")],
    "jonas": [("/jobs", "/jobs/{job_id}"), ("/support", "/support/{request_id}"),
              ("/support/{request_id}", "/support/{request_id}/close")],
    "amelie": [("/proposals?state=draft", "/proposals/{proposal_id}"),
               ("/proposals/{proposal_id}", "/proposals/{proposal_id}/withdraw")],
    "lucia": [("/reviews", "/reviews/{proposal_id}"), ("/proposals", "/proposals/{proposal_id}")],
    "sofia": [("/projects/alpenwerk-cfd", "/accounts/{account_id}"),
              ("/accounts/{account_id}", "/accounts/{account_id}/statement/print")],
    "operator": [("/jobs", "/jobs/{job_id}"), ("/proposals", "/proposals/{proposal_id}"),
                 ("/support", "/support/{request_id}"),
                 ("/ops/calls", "/ops/calls/{slug}/close"),
                 ("/ops/calls", "/ops/calls/{slug}/ranking")],
}
# GET routes of the portal that are no page to check, each with the reason. A new GET
# route must be checked above or named here (test_accessibility_coverage.py).
EXCLUDED: dict[str, str] = {
    "/static/{name}": "CSS and JavaScript files",
    "/login/oidc/{name}": "a redirect to the identity provider",
    "/login/oidc/callback": "the provider's redirect back: signs in and redirects (its "
                            "errors are the error page, checked through other pages' 404)",
    "/projects/{slug}/burndown/{period_id}.csv": "a CSV download",
    "/projects/{slug}/awards/{award_id}.csv": "a CSV download",
    "/jobs/{job_id}/log/{stream}": "JSON chunks of a log for the log box's follow",
    "/jobs/{job_id}/log/{stream}/download": "a log file download",
    "/reports/funder/{name}.csv": "a CSV download",
    "/reports/funder/chart/{name}.svg": "a chart (SVG) the report page includes",
    "/reports/yearly.pdf": "a PDF download",
    "/reports/chart/{name}.svg": "a chart (SVG) the reports page includes",
    "/reports/{name}.csv": "a CSV download",
    "/accounts/{account_id}/statement.{suffix}": "a CSV or PDF download",
    "/report-tasks/{task_id}/document": "the PDF a PI attached to a report",
    "/sessions/{session_id}": "needs a running JupyterLab session: axe checks it in "
                              "test_notebook_session_browser.py",
    "/sessions/{session_id}/stop": "the same: checked by axe in "
                                   "test_notebook_session_browser.py",
}


def _axe(page: Any) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})",
        TAGS)
    return list(result["violations"])


def _describe(url: str, violations: list[dict[str, Any]]) -> list[str]:
    out = []
    for v in violations:
        targets = "; ".join(" ".join(n["target"]) for n in v["nodes"][:3])
        out.append(f"{url}: {v['id']} ({v['impact']}, {len(v['nodes'])}x) {v['help']} "
                   f"-> {targets}")
    return out


@pytest.fixture(scope="module")
def axe_available() -> None:
    """axe-core from npm, installed once into ``tests/web/axe`` (``.ci/run`` does it
    first; a developer's ``make test`` gets it here)."""
    if AXE.exists():
        return
    if shutil.which("npm") is None:
        pytest.skip(f"{AXE} missing and no npm: apt-get install npm, or run "
                    "`npm ci --prefix tests/web/axe`")
    with (AXE.parents[2] / ".npm-ci.lock").open("w") as lock:  # one install at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not AXE.exists():
            done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"],
                                  cwd=AXE.parents[2], capture_output=True, text=True,
                                  timeout=600, check=False)
            if done.returncode != 0:
                pytest.fail(f"npm ci in {AXE.parents[2]} failed: {done.stderr[-500:]}")


def _linked_pages(page: Any, user: str) -> list[str]:
    """The URLs of the user's LINKED routes, each the first link in <main> of its page
    that leads to the route (resolved as the app does: the first route that matches)."""
    from test_accessibility_coverage import route_of

    found: dict[str, str] = {}
    for source, target in LINKED[user]:
        page.goto(found.get(source, source))
        hrefs = page.eval_on_selector_all(
            "main a[href]", "els => els.map(e => e.getAttribute('href'))")
        link = next((h for h in hrefs if h.startswith("/") and route_of(h) == target), None)
        assert link is not None, f"{user}: no link to a {target} page on {page.url}"
        found[target] = link
    return list(found.values())


@pytest.mark.parametrize("user", list(PAGES))
def test_every_page_of_every_role_meets_wcag_21_aa(new_page: Any, axe_available: None,
                                                   user: str) -> None:
    page = new_page()
    login(page, user)
    problems: list[str] = []
    urls = PAGES[user] + _linked_pages(page, user)
    for url in urls:
        page.goto(url)
        page.wait_for_load_state("networkidle")
        problems += _describe(url, _axe(page))
    assert not problems, "\n".join(problems)


def test_login_page_meets_wcag_21_aa(new_page: Any, axe_available: None) -> None:
    page = new_page()
    page.goto("/login")
    assert not (problems := _describe("/login", _axe(page))), "\n".join(problems)


def test_keyboard_only_reaches_the_main_flow(new_page: Any) -> None:
    page = new_page()
    login(page, "greta")
    page.goto("/")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip-link"
    page.keyboard.press("Enter")
    # from the main content, Tab reaches the project's "Submit a job" without a mouse
    for _ in range(60):
        page.keyboard.press("Tab")
        href = page.evaluate("() => document.activeElement.getAttribute('href')")
        if href and href.startswith("/jobs/new"):
            break
    else:
        pytest.fail("Tab never reached a 'Submit a job' link from the main content")
    page.keyboard.press("Enter")
    page.wait_for_url("**/jobs/new**")
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.tagName")
    assert focused in ("A", "INPUT", "SELECT", "TEXTAREA", "BUTTON")
