"""AUP, API tokens and ending sessions in a real browser (Debian's chromium through
Playwright) against the real portal server: a new user is sent to the AUP page and
accepts it, creates a token on Settings > API tokens (shown once), uses it over HTTP,
revokes it and sees it refused; after logout a copied session cookie no longer works."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from browser_helpers import login, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("portal-browser")]

PASSWORD = "a-long-aup-password"


def _new_user(portal: Any) -> str:
    username = f"aup{uuid.uuid4().hex[:8]}"
    r = portal.api("POST", "/api/v1/users", "operator", json={
        "username": username, "email": f"{username}@example.eu", "full_name": "Ada New",
        "password": PASSWORD})
    assert r.status_code == 201, r.text
    return username


def _me(portal: Any, secret: str) -> httpx.Response:
    return httpx.get(portal.url + "/api/v1/me", timeout=30,
                     headers={"Authorization": f"Bearer {secret}"})


def test_accept_aup_create_use_and_revoke_a_token(new_page: Any, portal: Any) -> None:
    username = _new_user(portal)
    page = new_page()
    login(page, username, PASSWORD)
    page.wait_for_url(re.compile(r".*/aup\?next=%2F$"))  # every page: the AUP first
    assert "Use the centre's GPUs only" in page.locator("[data-testid=aup-text]").inner_text()
    shot(page, "aup-01-policy")
    page.goto("/settings/tokens")
    page.wait_for_url(re.compile(r".*/aup\?next=%2Fsettings%2Ftokens$"))
    page.click("[data-testid=aup-accept]")
    page.wait_for_url(re.compile(r".*/settings/tokens$"))
    assert "accepted the acceptable-use policy" in page.locator(".flash").inner_text()

    page.click("[data-testid=whoami] ~ a[href='/settings']")
    page.click("[data-testid=tokens-link]")
    page.wait_for_url(re.compile(r".*/settings/tokens$"))
    page.fill("input[name=name]", "laptop")
    page.fill("input[name=days]", "7")
    page.select_option("select[name=scope]", "full")
    page.click("[data-testid=token-form] button[type=submit]")
    secret = page.locator("[data-testid=token-secret]").inner_text().strip()
    assert secret.startswith("rw_")
    shot(page, "aup-02-token-created")
    row = page.locator("[data-testid=tokens] tbody tr").first
    assert "laptop" in row.inner_text() and "full" in row.inner_text()

    me = _me(portal, secret)
    assert me.status_code == 200 and me.json()["username"] == username
    r = httpx.post(portal.url + "/api/v1/tokens", json={"name": "from-api", "scope": "read"},
                   headers={"Authorization": f"Bearer {secret}"}, timeout=30)
    assert r.status_code == 201 and r.json()["scope"] == "read"  # the AUP was accepted

    page.goto("/settings/tokens")  # the secret is not shown again
    assert page.locator("[data-testid=token-secret]").count() == 0
    assert secret not in page.content()
    laptop = page.locator("[data-testid=tokens] tbody tr", has_text="laptop")
    laptop.locator("button", has_text="Revoke").click()
    page.wait_for_url(re.compile(r".*/settings/tokens$"))
    assert "no longer works" in page.locator(".flash").inner_text()
    assert "revoked" in page.locator("[data-testid=tokens] tbody tr",
                                     has_text="laptop").inner_text()
    shot(page, "aup-03-token-revoked")
    r = _me(portal, secret)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_copied_cookie_stops_working_after_logout(new_page: Any, portal: Any,
                                                  browser: Any) -> None:
    page = new_page()
    login(page, "jonas")
    assert page.locator("[data-testid=whoami]").count() == 1
    copied = page.context.cookies()
    assert any(c["name"] == "rw_session" for c in copied)
    page.click("text=Log out")
    page.wait_for_url(re.compile(r".*/login$"))
    thief = new_page()
    thief.context.add_cookies([c for c in copied if c["name"] == "rw_session"])
    thief.goto("/jobs")
    assert "/login" in thief.url  # the copy is no longer a session
    assert thief.locator("[data-testid=whoami]").count() == 0
