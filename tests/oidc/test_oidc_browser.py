"""The portal's federated sign-in in Chromium (Playwright): a new person clicks "Sign in
with Test AAI", signs in at the real test provider and lands on a dashboard that shows
the project their entitlement gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from oidc_helpers import Centre

pytestmark = [pytest.mark.oidc, pytest.mark.browser, pytest.mark.xdist_group("oidc")]

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def test_new_user_signs_in_through_the_provider_in_chromium(centre: Centre,
                                                            chromium: Any) -> None:
    ctx = chromium.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(60_000)  # a failure guard on a loaded machine
    try:
        page = ctx.new_page()
        page.goto(centre.url + "/login")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "oidc-login.png"))
        page.get_by_test_id("oidc-testaai").click()
        page.wait_for_url(centre.provider.issuer + "/interaction/**")
        page.fill("input[name=login]", "carla")
        page.fill("input[name=password]", "carla-provider-pw")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(centre.url + "/")
        body = page.inner_text("body")
        assert "Welcome, Carla Chromium" in body and "nordlicht-llm" in body, body[:1000]
        page.screenshot(path=str(SHOTS / "oidc-dashboard.png"))
        page.goto(centre.url + "/settings/sign-in")
        assert "testaai" in page.get_by_test_id("identities").inner_text()
        # a wrong password at the provider stays at the provider, nothing made here
        other = ctx.new_page()
        ctx.clear_cookies()
        other.goto(centre.url + "/login/oidc/testaai")
        other.fill("input[name=login]", "carla")
        other.fill("input[name=password]", "wrong")
        other.get_by_role("button", name="Sign in").click()
        assert "Wrong username or password" in other.inner_text("body")
    finally:
        ctx.close()
