"""The portal's federated sign-in in Chromium (Playwright): a new person clicks "Sign in
with Test AAI", signs in at the real test provider, accepts the centre's AUP, lands on a
dashboard that shows the project their entitlement gives, creates an API token in the
portal and uses it from the CLI (issue 14's first "done when"; the device flow is in
test_oidc_device_cli.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from oidc_helpers import Centre

pytestmark = [pytest.mark.oidc, pytest.mark.browser, pytest.mark.xdist_group("oidc")]

BIN = Path(sys.executable).with_name("rechenwerk")
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def test_new_user_signs_in_through_the_provider_in_chromium(centre: Centre, chromium: Any,
                                                            tmp_path: Path) -> None:
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
        # The centre's acceptable-use policy first, before anything else.
        page.wait_for_url(centre.url + "/aup?next=%2F")
        page.screenshot(path=str(SHOTS / "oidc-aup.png"))
        page.get_by_test_id("aup-accept").click()
        page.wait_for_url(centre.url + "/")
        body = page.inner_text("body")
        assert "Welcome, Carla Chromium" in body and "nordlicht-llm" in body, body[:1000]
        page.screenshot(path=str(SHOTS / "oidc-dashboard.png"))
        # A token from the portal, used from the CLI as anyone would.
        page.goto(centre.url + "/settings/tokens")
        page.fill("input[name=name]", "login-node")
        page.fill("input[name=days]", "7")
        page.click("[data-testid=token-form] button[type=submit]")
        secret = page.get_by_test_id("token-secret").inner_text().strip()
        assert secret.startswith("rw_")
        env = {**os.environ, "RECHENWERK_API_URL": centre.url, "RECHENWERK_TOKEN": secret,
               "HOME": str(tmp_path)}
        cli = subprocess.run([str(BIN), "project", "list", "--json"], env=env,
                             capture_output=True, text=True, timeout=120)
        assert cli.returncode == 0, cli.stderr
        assert "nordlicht-llm" in cli.stdout and "Traceback" not in cli.stderr
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
