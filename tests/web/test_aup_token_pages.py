"""The portal's AUP gate and token page (TestClient, SQLite and PostgreSQL): every page
redirects to /aup until the current AUP is accepted (CSRF-protected form); Settings >
API tokens lists, creates (secret shown once) and revokes tokens, and the API honours
the scope and the revocation at once."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from test_pages import _hash, csrf, login

from factories import T0, bearer, make_project, make_user
from rechenwerk.access.aup import publish_aup
from rechenwerk.access.models import AupAcceptance, User
from rechenwerk.access.security import create_token


def _world(session: Session, *, aup: bool) -> dict[str, Any]:
    op = make_user(session, username="olga", operator=True)
    pi = make_user(session, username="pia", password_hash=_hash())
    make_user(session, username="otto", password_hash=_hash())
    make_project(session, pi=pi, slug="alpha")
    if aup:
        publish_aup(session, op, "Use GPUs for science only.\nBe kind.", now=T0)
    session.commit()
    return {"pi": pi.id}


def test_no_aup_published_no_redirect(api_client: Any, session: Session) -> None:
    _world(session, aup=False)
    login(api_client, "pia")
    assert api_client.get("/", follow_redirects=False).status_code == 200
    r = api_client.get("/aup")
    assert r.status_code == 200 and "has not published" in r.text


def test_every_page_redirects_to_the_aup_until_accepted(api_client: Any,
                                                        session: Session) -> None:
    world = _world(session, aup=True)
    login(api_client, "pia")
    for path, nxt in (("/", "%2F"), ("/jobs?state=running", "%2Fjobs%3Fstate%3Drunning"),
                      ("/settings/tokens", "%2Fsettings%2Ftokens")):
        r = api_client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/aup?next={nxt}", path
    r = api_client.get("/jobs", headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.status_code == 204 and r.headers["HX-Redirect"].startswith("/aup?next=")
    r = api_client.post("/settings/tokens", follow_redirects=False, data={
        "name": "x", "days": "5", "scope": "full",
        "csrf_token": csrf(api_client.get("/aup?next=/jobs").text)})
    assert r.status_code == 303 and r.headers["location"].startswith("/aup")

    page = api_client.get("/aup?next=/jobs")
    assert page.status_code == 200 and "Use GPUs for science only." in page.text
    assert "I accept version 1" in page.text
    r = api_client.post("/aup/accept", data={"version": "1", "next": "/jobs"},
                        follow_redirects=False)
    assert r.status_code == 403 and "security token" in r.text  # no CSRF token
    r = api_client.post("/aup/accept", follow_redirects=False, data={
        "version": "1", "next": "/jobs", "csrf_token": csrf(page.text)})
    assert r.status_code == 303 and r.headers["location"] == "/jobs"
    assert api_client.get("/", follow_redirects=False).status_code == 200
    assert "You accepted this version" in api_client.get("/aup").text
    session.expire_all()
    [acc] = session.scalars(select(AupAcceptance)).all()
    assert (acc.user_id, acc.version) == (world["pi"], 1)


def test_token_page_create_show_once_use_and_revoke(api_client: Any,
                                                    session: Session) -> None:
    _world(session, aup=False)
    login(api_client, "pia")
    page = api_client.get("/settings/tokens")
    assert page.status_code == 200 and "You have no API tokens" in page.text
    assert 'href="/settings/tokens"' in api_client.get("/settings").text  # linked
    r = api_client.post("/settings/tokens", data={
        "name": "dashboard", "days": "30", "scope": "read", "csrf_token": csrf(page.text)})
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    m = re.search(r'data-testid="token-secret"[^>]*>(rw_[^<]+)<', r.text)
    assert m, r.text
    secret = m.group(1)
    again = api_client.get("/settings/tokens").text
    assert secret not in again and "dashboard" in again and "read-only" in again
    me = api_client.get("/api/v1/me", headers=bearer(secret))
    assert me.status_code == 200 and me.json()["username"] == "pia"
    r = api_client.post("/api/v1/tokens", json={"name": "x"}, headers=bearer(secret))
    assert r.status_code == 403 and r.json()["code"] == "read_only_token"

    token_id = int(re.search(r'data-testid="revoke-(\d+)"', again).group(1))  # type: ignore[union-attr]
    r = api_client.post(f"/settings/tokens/{token_id}/revoke", follow_redirects=False)
    assert r.status_code == 403  # no CSRF token
    assert api_client.get("/api/v1/me", headers=bearer(secret)).status_code == 200
    r = api_client.post(f"/settings/tokens/{token_id}/revoke", follow_redirects=False,
                        data={"csrf_token": csrf(again)})
    assert r.status_code == 303 and r.headers["location"] == "/settings/tokens"
    r = api_client.get("/api/v1/me", headers=bearer(secret))
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert "revoked" in api_client.get("/settings/tokens").text


def test_token_form_errors_and_other_users_tokens(api_client: Any,
                                                  session: Session) -> None:
    _world(session, aup=False)
    otto = session.scalars(select(User).where(User.username == "otto")).one()
    other, _ = create_token(session, otto, name="otto's", now=T0)
    session.commit()
    login(api_client, "pia")
    token = csrf(api_client.get("/settings/tokens").text)
    for data, field, text in (
            ({"name": "", "days": "30", "scope": "full"}, "name", "Name is required"),
            ({"name": "a", "days": "1000", "scope": "full"}, "days", "at most 366 days"),
            ({"name": "a", "days": "0", "scope": "full"}, "days", "at least 1"),
            ({"name": "a", "days": "3", "scope": "root"}, "scope", "full or read-only")):
        r = api_client.post("/settings/tokens", data={**data, "csrf_token": token})
        assert r.status_code == 422 and f'data-testid="error-{field}"' in r.text, data
        assert text in r.text
    r = api_client.post(f"/settings/tokens/{other.id}/revoke", data={"csrf_token": token},
                        follow_redirects=False)
    assert r.status_code == 404
    session.expire_all()
    assert session.get(type(other), other.id).revoked_at is None  # type: ignore[union-attr]
    assert "otto's" not in api_client.get("/settings/tokens").text
