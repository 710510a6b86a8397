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
