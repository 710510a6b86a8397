"""Portal sign-in through the real test OpenID Provider (authorization code + PKCE),
driven with httpx as a browser would: the user made from the claims, linking, claims
that change at the provider, and every refusal (a clear page, a log line, no user)."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from oidc_helpers import (
    UNI_NORD,
    Centre,
    accept_aup_if_asked,
    browser_sign_in,
    follow,
    new_signing_key,
    provider_login,
)
from sqlalchemy import func, select

from rechenwerk.access.models import AuditEntry, Project, ProjectMembership, User
from rechenwerk.access.oidc.models import OidcIdentity

pytestmark = [pytest.mark.oidc, pytest.mark.xdist_group("oidc")]


def _user(centre: Centre, username: str) -> User | None:
    with centre.session() as s:
        user = s.scalars(select(User).where(User.username == username)).one_or_none()
        if user is not None:
            s.expunge(user)
        return user


def _memberships(centre: Centre, username: str) -> dict[str, tuple[str, str | None]]:
    with centre.session() as s:
        rows = s.execute(select(Project.slug, ProjectMembership.role, ProjectMembership.source)
                         .join(Project, Project.id == ProjectMembership.project_id)
                         .join(User, User.id == ProjectMembership.user_id)
                         .where(User.username == username)).all()
        return {slug: (role, source) for slug, role, source in rows}


def _count(centre: Centre, model: Any) -> int:
    with centre.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_first_sign_in_creates_the_user_from_the_claims(centre: Centre) -> None:
    http, page = browser_sign_in(centre, "ada", "ada-provider-pw")
    assert page.status_code == 200 and str(page.url) == centre.url + "/", page.text[-1500:]
    assert "ada" in page.text  # the dashboard of the signed-in user
    ada = _user(centre, "ada")
    assert ada is not None and ada.password_hash is None
    assert ada.email == "ada@uni-nord.example" and ada.full_name == "Ada Federated"
    assert ada.is_reviewer and not ada.is_operator
    with centre.session() as s:
        org = s.get(User, ada.id).organization  # type: ignore[union-attr]
        assert org is not None and org.name == UNI_NORD
        identity = s.scalars(select(OidcIdentity).where(OidcIdentity.user_id == ada.id)).one()
        assert identity.issuer == centre.provider.issuer and identity.subject == "ada"
        actions = set(s.scalars(select(AuditEntry.action).where(
            AuditEntry.entity_id.in_([str(ada.id), str(_project_id(s, "nordlicht-llm"))]))))
    # the entitlement of an existing project gives the membership; others are ignored
    assert _memberships(centre, "ada") == {"nordlicht-llm": ("member", "oidc:testaai")}
    assert {"user.create", "oidc.link", "user.update", "membership.add",
            "login.oidc"} <= actions
    with centre.session() as s:  # the centre's AUP came first (browser_sign_in accepts it)
        assert "aup.accept" in set(s.scalars(select(AuditEntry.action).where(
            AuditEntry.actor_user_id == ada.id)))
    # the portal session works, and the projects page shows the project
    assert "nordlicht-llm" in http.get(centre.url + "/").text
    # signing in again finds the same user (by issuer + sub), makes no second one
    users = _count(centre, User)
    browser_sign_in(centre, "ada", "ada-provider-pw")
    assert _count(centre, User) == users


def _project_id(s: Any, slug: str) -> int:
    return int(s.scalar(select(Project.id).where(Project.slug == slug)))


def test_changes_at_the_provider_apply_at_the_next_sign_in(centre: Centre) -> None:
    """Claims-granted memberships and rights follow the claims; a membership added by
    hand stays."""
    centre.provider.set_claims("erik", eduperson_entitlement=[
        "urn:geant:rechenwerk.example:group:nordlicht-llm:role=viewer#aai.example",
        "urn:geant:rechenwerk.example:group:operators#aai.example"])
    browser_sign_in(centre, "erik", "erik-provider-pw")
    erik = _user(centre, "erik")
    assert erik is not None and erik.is_operator
    assert _memberships(centre, "erik") == {"nordlicht-llm": ("viewer", "oidc:testaai")}
    # the PI of another project adds erik by hand
    r = httpx.post(f"{centre.url}/api/v1/projects/nordstadt-climate/members",
                   headers={"Authorization": f"Bearer {centre.tokens['jan']}"},
                   json={"username": "erik", "role": "member"}, timeout=30)
    assert r.status_code in (200, 201), r.text
    # at the provider: the role changes, then the project and the operator group go
    centre.provider.set_claims("erik", eduperson_entitlement=[
        "urn:geant:rechenwerk.example:group:nordlicht-llm:role=member#aai.example"])
    browser_sign_in(centre, "erik", "erik-provider-pw")
    assert _memberships(centre, "erik")["nordlicht-llm"] == ("member", "oidc:testaai")
    centre.provider.set_claims("erik", eduperson_entitlement=[])
    browser_sign_in(centre, "erik", "erik-provider-pw")
    erik = _user(centre, "erik")
    assert erik is not None and not erik.is_operator
    assert _memberships(centre, "erik") == {"nordstadt-climate": ("member", None)}
    with centre.session() as s:
        removed = s.scalars(select(AuditEntry).where(
            AuditEntry.action == "membership.remove",
            AuditEntry.entity_id == str(_project_id(s, "nordlicht-llm")))).all()
        assert any(e.changes.get("user") == "erik" and e.changes.get("via") == "oidc:testaai"
                   for e in removed)


def test_an_existing_local_name_is_never_taken_over(centre: Centre) -> None:
    """The provider says preferred_username "greta": a new user, not the local greta."""
    before = _memberships(centre, "greta")
    browser_sign_in(centre, "greta", "greta-provider-pw")
    made = _user(centre, "greta-testaai")
    assert made is not None and made.email == "greta@nordlicht.example"
    assert _memberships(centre, "greta") == before
    with centre.session() as s:
        local = s.scalars(select(User).where(User.username == "greta")).one()
        assert not s.scalars(select(OidcIdentity).where(
            OidcIdentity.user_id == local.id)).first()


def test_a_signed_in_user_links_a_provider_account(centre: Centre) -> None:
    """The local account's proof is its portal session: the identity links to it."""
    http = httpx.Client(timeout=30)
    login = http.get(centre.url + "/login")
    csrf = login.text.split('name="csrf_token" value="')[1].split('"')[0]
    r = http.post(centre.url + "/login", data={"username": "jonas", "password": "jonas-demo",
                                               "csrf_token": csrf, "next": "/"})
    assert r.status_code == 303, r.text[:300]
    page = http.get(centre.url + "/settings/sign-in")
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    assert "Link Test AAI" in page.text
    centre.provider.set_claims("nomail", email="jonas@nordlicht.example")
    start = follow(http, http.post(centre.url + "/login/oidc/testaai/link",
                                   data={"csrf_token": csrf}))
    done = follow(http, provider_login(http, start, "nomail", "nomail-provider-pw"))
    assert str(done.url) == centre.url + "/settings/sign-in", done.text[:300]
    assert "testaai" in done.text and "<code>nomail</code>" in done.text
    assert _user(centre, "nomail") is None  # linked, not created
    with centre.session() as s:
        jonas = s.scalars(select(User).where(User.username == "jonas")).one()
        identity = s.scalars(select(OidcIdentity).where(OidcIdentity.subject == "nomail")).one()
        assert identity.user_id == jonas.id
    # from now on the provider account signs in as jonas
    http2, page = browser_sign_in(centre, "nomail", "nomail-provider-pw")
    assert page.status_code == 200
    assert "jonas" in http2.get(centre.url + "/settings/sign-in").text
    centre.provider.set_claims("nomail", email=None)


def _csrf(page: httpx.Response) -> str:
    return page.text.split('name="csrf_token" value="')[1].split('"')[0]


def test_linking_needs_the_same_session_at_the_end(centre: Centre) -> None:
    """Started by a signed-in pieter, who logs out before the provider answers: the
    provider account is not linked to pieter, and no one is signed in."""
    http = httpx.Client(timeout=30)
    r = http.post(centre.url + "/login", data={
        "username": "pieter", "password": "pieter-demo", "next": "/",
        "csrf_token": _csrf(http.get(centre.url + "/login"))})
    assert r.status_code == 303
    page = http.get(centre.url + "/settings/sign-in")
    start = follow(http, http.post(centre.url + "/login/oidc/testaai/link",
                                   data={"csrf_token": _csrf(page)}))
    http.post(centre.url + "/logout", data={"csrf_token": _csrf(page)})
    done = follow(http, provider_login(http, start, "ada", "ada-provider-pw"))
    _refused(done, 401, "the account to link is no longer signed in here")
    with centre.session() as s:
        pieter = s.scalars(select(User).where(User.username == "pieter")).one()
        assert s.scalars(select(OidcIdentity).where(
            OidcIdentity.user_id == pieter.id)).first() is None


# ------------------------------------------------------------------ refusals


def _refused(page: httpx.Response, status: int, text: str) -> None:
    assert page.status_code == status, page.text[:500]
    assert text in page.text, page.text[:1500]
    assert "Traceback" not in page.text


def test_missing_claims_give_a_clear_page_and_no_user(
        centre: Centre, caplog: pytest.LogCaptureFixture) -> None:
    users = _count(centre, User)
    with caplog.at_level(logging.WARNING, logger="rechenwerk.oidc"):
        _, page = browser_sign_in(centre, "nomail", "nomail-provider-pw")
    _refused(page, 401, "did not send the claim &#39;email&#39;")
    assert _count(centre, User) == users
    assert any("reason=the provider did not send the claim 'email'" in r.getMessage()
               for r in caplog.records)


def test_replayed_state_is_refused(centre: Centre, caplog: pytest.LogCaptureFixture) -> None:
    http, redirect = browser_sign_in(centre, "ada", "ada-provider-pw", stop_at_callback=True)
    callback = str(redirect.url.join(redirect.headers["location"]))
    first = accept_aup_if_asked(http, follow(http, http.get(callback)))
    assert first.status_code == 200 and str(first.url) == centre.url + "/"
    with caplog.at_level(logging.WARNING, logger="rechenwerk.oidc"):
        again = http.get(callback)
    _refused(again, 401, "this sign-in has expired or was already used")
    assert any("reason=unknown or reused state" in r.getMessage() for r in caplog.records)


def test_a_callback_in_another_browser_is_refused(centre: Centre) -> None:
    """Login CSRF: the callback URL of one browser's sign-in carried to another."""
    _, redirect = browser_sign_in(centre, "ada", "ada-provider-pw", stop_at_callback=True)
    callback = str(redirect.url.join(redirect.headers["location"]))
    with httpx.Client(timeout=30) as other:
        _refused(other.get(callback), 401, "started in another browser")


def test_wrong_issuer_is_refused(centre: Centre, caplog: pytest.LogCaptureFixture) -> None:
    with httpx.Client(timeout=30) as http, caplog.at_level(logging.WARNING,
                                                           logger="rechenwerk.oidc"):
        page = http.get(centre.url + "/login/oidc/wrongiss")
    _refused(page, 401, "sign-in with Wrong Issuer failed")
    assert "names the issuer" in page.text
    assert any("provider=wrongiss reason=the provider's discovery document" in r.getMessage()
               for r in caplog.records)


def test_a_provider_that_is_down_gives_a_clear_page(
        centre: Centre, caplog: pytest.LogCaptureFixture) -> None:
    with httpx.Client(timeout=30) as http, caplog.at_level(logging.WARNING,
                                                           logger="rechenwerk.oidc"):
        page = http.get(centre.url + "/login/oidc/down")
    _refused(page, 503, "sign-in with Down AAI is not possible now")
    assert any("provider unreachable: provider=down" in r.getMessage()
               for r in caplog.records)


def test_the_login_page_offers_each_provider(centre: Centre) -> None:
    page = httpx.get(centre.url + "/login", timeout=30)
    for name in ("Test AAI", "Wrong Issuer", "Down AAI"):
        assert f"Sign in with {name}" in page.text
    assert 'name="password"' in page.text  # local passwords stay


def test_key_rotation_at_the_provider(centre: Centre, caplog: pytest.LogCaptureFixture) -> None:
    """The provider signs with a new key: the unknown key id makes one JWKS fetch."""
    browser_sign_in(centre, "ada", "ada-provider-pw")  # the old key is cached now
    old = centre.provider.keys
    centre.provider.restart([new_signing_key("rotated")])
    try:
        with caplog.at_level(logging.INFO, logger="rechenwerk.oidc"):
            _, page = browser_sign_in(centre, "ada", "ada-provider-pw")
        assert page.status_code == 200 and str(page.url) == centre.url + "/", page.text[:500]
        assert any("key id 'rotated' not in the cached JWKS" in r.getMessage()
                   for r in caplog.records)
    finally:
        centre.provider.restart(old)
