"""Keyboard-only walks of the main flows (issue 18 item 7) in Chromium: a PI writes and
submits a proposal, a member submits a job, a reviewer scores a proposal, each from the
login page on with the keyboard alone. Focus moves only by Tab and Shift+Tab; links and
buttons are followed with Enter or Space; text is typed with the keyboard into the field
that has the focus; a select's option is chosen by typing its first letters. No element
is clicked or filled by a selector (selectors only say which focused element the walk
waits for).

At every Tab stop the focused element must show its focus (an outline or a box shadow in
its computed style). Each walk uses the skip link, makes a mistake the server refuses (the
PI two at once: both come back in one round), and checks that the page that comes back
puts the focus on the first field in error, not on <body>."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from browser_helpers import PageLoads

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("portal-browser")]

MAX_TABS = 150  # a failure guard: the longest page here has fewer stops

# '' when the focused element shows its focus, else what it is ('body' when none has it)
FOCUS_SHOWN = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return 'body';
  const cs = getComputedStyle(el);
  const outline = cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0;
  return outline || cs.boxShadow !== 'none' ? '' : el.outerHTML.slice(0, 160);
}"""


def focused_is(page: Any, selector: str) -> bool:
    return bool(page.evaluate(
        "(sel) => document.activeElement !== null && document.activeElement.matches(sel)",
        selector))


def tab_to(page: Any, selector: str, *, back: bool = False) -> None:
    """Tab (Shift+Tab with ``back``) until the focused element matches ``selector``,
    checking at each stop that the focus is shown."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        hidden = page.evaluate(FOCUS_SHOWN)
        assert not hidden, f"focus not shown on {hidden} (on {page.url})"
        if focused_is(page, selector):
            return
    pytest.fail(f"{MAX_TABS} Tabs never reached {selector} on {page.url}")


def type_over(page: Any, text: str) -> None:
    """Replace the focused field's text with ``text``, typed."""
    page.keyboard.press("Control+A")
    page.keyboard.type(text)


def keyboard_login(page: Any, loads: PageLoads, username: str) -> None:
    from rechenwerk.access.demo import demo_password

    page.goto("/login")  # the one URL typed
    assert focused_is(page, "input[name=username]")  # the form's autofocus
    page.keyboard.type(username)
    tab_to(page, "input[name=password]")
    page.keyboard.type(demo_password(username))
    loads.press("Enter")
    assert urlsplit(page.url).path == "/", page.url  # the dashboard


def skip_to_main(page: Any) -> None:
    """The first Tab of a page is the skip link; Enter moves the focus to <main>."""
    page.keyboard.press("Tab")
    assert focused_is(page, "a.skip-link"), page.evaluate("document.activeElement.outerHTML")
    assert not page.evaluate(FOCUS_SHOWN)
    page.keyboard.press("Enter")
    assert focused_is(page, "main#main")


def assert_focus_on_first_error(page: Any, field: str) -> None:
    active = page.evaluate("document.activeElement.tagName + '#' + document.activeElement.id")
    assert active != "BODY#", "the focus was lost to <body> after the submit error"
    assert focused_is(page, f"#f-{field}[aria-invalid=true]"), active
    assert not page.evaluate(FOCUS_SHOWN)


def test_pi_writes_and_submits_a_proposal_with_the_keyboard_only(new_page: Any) -> None:
    page = new_page()
    loads = PageLoads(page)
    keyboard_login(page, loads, "greta")
    skip_to_main(page)
    tab_to(page, "main a[href='/projects/nordlicht-llm']")  # the project's card
    loads.press("Enter")
    skip_to_main(page)
    tab_to(page, "[data-testid=write-proposal]")
    loads.press("Enter")
    assert "/proposals/new?project=nordlicht-llm" in page.url

    skip_to_main(page)
    tab_to(page, "#f-call")
    page.keyboard.type("Fast")  # the option starting with these letters
    assert "Fast Lane" in page.evaluate(
        "(() => { const s = document.activeElement; return s.options[s.selectedIndex].text })()")
    tab_to(page, "#f-project")
    assert page.evaluate("document.activeElement.value") == "nordlicht-llm"  # chosen
    tab_to(page, "#f-abstract")  # the title left empty: a mistake
    page.keyboard.type("Keyboard-only walk: fine-tuning on service reports.")
    tab_to(page, "#f-requested_gpu_hours")
    page.keyboard.type("3000")  # a second mistake: above the call's cap of 2,000
    tab_to(page, "#f-duration_months")
    page.keyboard.type("2")
    tab_to(page, "form#proposal-form button[value=submit]")
    loads.press("Enter")
    # both mistakes in one round, each beside its field; the focus on the first
    assert "required" in page.inner_text("[data-testid=error-title]")
    assert "maximum of 2000" in page.inner_text("[data-testid=error-requested_gpu_hours]")
    assert_focus_on_first_error(page, "title")

    page.keyboard.type("Service-report assistant, keyboard walk")
    tab_to(page, "#f-requested_gpu_hours[aria-invalid=true]")
    assert page.evaluate("document.activeElement.value") == "3000"  # the input kept
    type_over(page, "1500")
    tab_to(page, "form#proposal-form button[value=submit]")
    loads.press("Space")
    assert re.search(r"/proposals/\d+$", page.url), page.inner_text("main")[:2000]
    assert "Service-report assistant, keyboard walk" in page.inner_text("main")
    assert "submitted" in page.inner_text("main")


def test_member_submits_a_job_with_the_keyboard_only(new_page: Any) -> None:
    page = new_page()
    loads = PageLoads(page)
    keyboard_login(page, loads, "jonas")
    skip_to_main(page)
    tab_to(page, "[data-testid=project-nordlicht-llm] a[href^='/jobs/new']")
    loads.press("Enter")

    skip_to_main(page)
    tab_to(page, "#f-name")
    page.keyboard.type("keyboard-walk")
    tab_to(page, "#f-project")
    assert page.evaluate("document.activeElement.value") == "nordlicht-llm"
    tab_to(page, "#f-command")
    page.keyboard.type("python3 -c \"print('typed, not clicked')\"")
    tab_to(page, "#f-gpus")
    page.keyboard.type("0")  # a mistake: at least 1
    tab_to(page, "#f-walltime")
    page.keyboard.type("5m")
    tab_to(page, "form[data-testid=submit-form] button[type=submit]")
    loads.press("Enter")
    assert "at least 1" in page.inner_text("[data-testid=error-gpus]")
    assert_focus_on_first_error(page, "gpus")

    type_over(page, "1")
    # Back to the name with Shift+Tab: the input was kept
    tab_to(page, "#f-name", back=True)
    assert page.evaluate("document.activeElement.value") == "keyboard-walk"
    tab_to(page, "form[data-testid=submit-form] button[type=submit]")
    loads.press("Space")
    assert re.search(r"/jobs/\d+$", page.url), page.inner_text("main")[:2000]
    assert "submitted" in page.inner_text(".flash")


def test_reviewer_scores_a_proposal_with_the_keyboard_only(new_page: Any, portal: Any) -> None:
    calls = portal.api("GET", "/api/v1/calls", "jan").json()["items"]
    research = next(c["slug"] for c in calls if c["slug"].startswith("research-"))
    r = portal.api("POST", "/api/v1/proposals", "jan", json={
        "call": research, "project": "nordstadt-climate", "gpu_type": "A100-80GB",
        "title": "Keyboard walk: hail nowcasting", "requested_gpu_hours": 2000})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert portal.api("POST", f"/api/v1/proposals/{pid}/submit", "jan").status_code == 200
    r = portal.api("POST", f"/api/v1/proposals/{pid}/reviewers", "operator",
                   json={"reviewer": "margot"})
    assert r.status_code == 201, r.text

    page = new_page()
    loads = PageLoads(page)
    keyboard_login(page, loads, "margot")
    skip_to_main(page)
    tab_to(page, "[data-testid=work-reviews] a")  # "Needs you"
    loads.press("Enter")
    skip_to_main(page)
    tab_to(page, f"main a[href='/reviews/{pid}']")
    loads.press("Enter")
    skip_to_main(page)
    tab_to(page, "form[data-testid=invitation-form] button[value=accept]")
    loads.press("Space")

    skip_to_main(page)
    tab_to(page, "#f-technical_score")
    page.keyboard.type("4")
    tab_to(page, "#f-comment")  # the scientific score not chosen: a mistake
    page.keyboard.type("Clear plan; the radar data need a licence check.")
    tab_to(page, "form[data-testid=review-form] button[type=submit]")
    loads.press("Enter")
    assert "required" in page.inner_text("[data-testid=error-scientific_score]")
    assert_focus_on_first_error(page, "scientific_score")
    page.keyboard.type("3")
    tab_to(page, "#f-technical_score", back=True)
    assert page.evaluate("document.activeElement.value") == "4"  # kept
    tab_to(page, "form[data-testid=review-form] button[type=submit]")
    loads.press("Enter")
    assert urlsplit(page.url).path == "/reviews", page.inner_text("main")[:2000]
    assert "submitted" in page.inner_text(".flash")
