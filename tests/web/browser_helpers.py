"""Helpers of the browser tests: log in through the form, save a screenshot artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def login(page: Any, username: str, password: str | None = None) -> None:
    from rechenwerk.access.demo import demo_password

    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password or demo_password(username))
    page.click("form button[type=submit]")
    page.wait_for_load_state()


def shot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


class PageLoads:
    """Counts a page's full page loads (the main frame's ``load`` event: a link
    followed, a form posted, a redirect's target; not htmx's partial requests) and
    keeps their URLs for the failure message. :meth:`follow` clicks and waits for the
    load it causes."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.urls: list[str] = []
        page.on("load", lambda p: self.urls.append(p.url))

    @property
    def count(self) -> int:
        return len(self.urls)

    def follow(self, target: Any) -> None:
        """Click ``target`` (a selector or a locator) and wait for the page it loads."""
        locator = self.page.locator(target) if isinstance(target, str) else target
        with self.page.expect_event("load"):
            locator.click()

    def press(self, key: str) -> None:
        """Press ``key`` (e.g. Enter on a focused link or button) and wait for the page
        it loads."""
        with self.page.expect_event("load"):
            self.page.keyboard.press(key)

    def within(self, budget: int, flow: str) -> None:
        assert self.count <= budget, (
            f"{flow} took {self.count} page loads, more than its budget of {budget}:\n"
            + "\n".join(self.urls))
