"""The skip link in a real browser (Debian's chromium through Playwright): the first Tab
on a page focuses "Skip to content", and following it moves focus past the navigation."""

from __future__ import annotations

from typing import Any

import pytest
from browser_helpers import login

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("portal-browser")]


def test_first_tab_focuses_the_skip_link_which_jumps_to_main(new_page: Any) -> None:
    page = new_page()
    login(page, "greta")
    page.goto("/jobs")  # no autofocus here (the login form focuses its username field)
    page.keyboard.press("Tab")
    focused = page.evaluate("[document.activeElement.textContent.trim(),"
                            " document.activeElement.getAttribute('href')]")
    assert focused == ["Skip to content", "#main"]
    assert page.locator("a.skip-link").is_visible()  # shown once focused
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")  # the next stop is inside main, past the navigation
    assert page.evaluate("document.activeElement.closest('main') !== null")
