"""WCAG 2.1 A and AA on every page of every role: axe-core (npm, ``tests/web/axe``) runs
in Chromium on each page the demo's PI, member, reviewer and operator reach, and on the
login page; no violation of those levels is allowed. A keyboard-only walk checks that the
skip link and the main flow's controls are reachable with Tab."""

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
          "/settings/tokens", "/projects/new", "/support", "/support/new"]
PAGES: dict[str, list[str]] = {
    "greta": [*COMMON, "/jobs/new", "/proposals/new", "/projects/nordlicht-llm",
              "/jobs?state=completed", "/awards/1"],  # award 1: nordlicht-llm's
    "jonas": [*COMMON, "/jobs/new", "/projects/nordlicht-llm"],
    "lucia": [*COMMON, "/reviews"],
    "sofia": [*COMMON, "/jobs/new", "/projects/alpenwerk-cfd"],  # a pay-per-use company
    "operator": [*COMMON, "/ops/cluster", "/ops/queue", "/ops/calls", "/ops/audit",
                 "/ops/notifications", "/ops/projects", "/ops/users", "/ops/organizations",
                 "/projects/nordlicht-llm", "/reports/funder", "/reports/yearly",
                 "/awards/1", "/award-changes", "/report-tasks?state=open",
                 "/proposals?overdue=true"],
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


def _detail_pages(page: Any) -> list[str]:
    """A job page and a proposal page the user can see, found through the lists."""
    found = []
    for listing, prefix in (("/jobs", "/jobs/"), ("/proposals", "/proposals/"),
                            ("/support", "/support/"), ("/projects/alpenwerk-cfd", "/accounts/")):
        page.goto(listing)
        links = [h for h in page.eval_on_selector_all(
            "main a[href]", "els => els.map(e => e.getAttribute('href'))")
            if h.startswith(prefix) and h[len(prefix):].split("?")[0].isdigit()]
        if links:
            found.append(links[0])
    return found


@pytest.mark.parametrize("user", list(PAGES))
def test_every_page_of_every_role_meets_wcag_21_aa(new_page: Any, axe_available: None,
                                                   user: str) -> None:
    page = new_page()
    login(page, user)
    problems: list[str] = []
    urls = PAGES[user] + _detail_pages(page)
    if user == "sofia":
        assert any(u.startswith("/accounts/") for u in urls), urls  # the account's page too
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
