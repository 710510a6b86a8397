"""Portal sessions that cannot be forged (on SQLite and PostgreSQL): the cookie holds only
a random id, the server-side record decides; logout, a password change, idle and absolute
expiry end a session; CSRF tokens are per session and not in the cookie."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_pages import _hash, csrf
from test_pages import login as portal_login

from factories import T0, make_call, make_org, make_project, make_user
from rechenwerk.access.models import Call, PortalSessionRecord, User
from rechenwerk.access.portal_sessions import start_portal_session
from rechenwerk.access.users import set_password, update_user
from rechenwerk.clock import FakeClock
from rechenwerk.config import DEV_SECRET_KEY, Settings
from rechenwerk.errors import Unauthenticated


def login(client: Any, username: str) -> str:
    """Log in with a fresh cookie jar; returns the session cookie."""
    cookie: str = portal_login(client, username).cookies.get("rw_session")
    return cookie


def use(client: Any, cookie: str) -> Any:
    client.cookies.clear()
    client.cookies.set("rw_session", cookie)
    return client


def logged_in(client: Any) -> bool:
    r = client.get("/", follow_redirects=False)
    assert r.status_code in (200, 303), r.text
    return bool(r.status_code == 200)


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    uni = make_org(session, name="Uni A", kind="university")
    pi = make_user(session, username="pia", org=uni, password_hash=_hash())
    make_user(session, username="lonely", org=uni, password_hash=_hash())
    # The first operator as docs/access.md bootstraps it: no portal password.
    boot_op = make_user(session, username="olga", org=uni, operator=True)
    make_project(session, pi=pi, slug="alpha")
    call = make_call(session, slug="open-call", opens_at=T0 - timedelta(days=1),
                     closes_at=T0 + timedelta(days=30))
    session.commit()
    return {"pi": pi, "boot_op": boot_op, "call": call.id}


def test_cookie_forged_with_the_dev_secret_is_refused(
        api_client: Any, world: dict[str, Any], session: Session) -> None:
    settings = Settings()
    assert settings.secret_key == DEV_SECRET_KEY  # what api_client's server signs with
    op_id = world["boot_op"].id
    # The old cookie format, signed with the public development secret: an operator
    # without a portal password, a CSRF token of the forger's choice.
    old = URLSafeTimedSerializer(DEV_SECRET_KEY, salt="rechenwerk.portal.session.v1")
    forged = old.dumps({"uid": op_id, "csrf": "forged-token", "pw": ""})
    use(api_client, forged)
    r = api_client.get("/ops/audit", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    use(api_client, forged)
    r = api_client.post("/ops/calls/open-call/close", data={"csrf_token": "forged-token"},
                        follow_redirects=False)
    assert r.status_code == 403 and "security token" in r.text
    session.expire_all()
    assert session.get(Call, world["call"]).closed_at is None  # nothing changed
    # The new format with a made-up id (signed with the same key) is no session either.
    new = URLSafeTimedSerializer(DEV_SECRET_KEY, salt="rechenwerk.portal.session.v2")
    for sid in ("1", str(op_id), "A" * 43):
        use(api_client, new.dumps({"sid": sid}))
        r = api_client.get("/ops/audit", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_user_without_password_gets_no_session(
        api_client: Any, world: dict[str, Any], session: Session) -> None:
    page = api_client.get("/login")
    r = api_client.post("/login", data={"username": "olga", "password": "anything-at-all",
                                        "csrf_token": csrf(page.text)})
    assert r.status_code == 401 and "Wrong username or password." in r.text
    user = session.get(User, world["boot_op"].id)
    with pytest.raises(Unauthenticated, match="cannot log in to the portal"):
        start_portal_session(session, user, now=T0, max_age_s=3600)
    assert session.scalars(select(PortalSessionRecord)).all() == []


def test_cookie_copied_before_logout_no_longer_works(
        api_client: Any, world: dict[str, Any], session: Session) -> None:
    cookie = login(api_client, "pia")
    assert logged_in(api_client)
    r = api_client.post("/logout", data={"csrf_token": csrf(api_client.get("/").text)},
                        follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert not logged_in(use(api_client, cookie))  # the copy, replayed
    session.expire_all()
    [rec] = session.scalars(select(PortalSessionRecord)).all()
    assert rec.revoked_at is not None
    assert "sid_hash" not in cookie and rec.sid_hash not in cookie  # only the raw id


def test_password_change_ends_the_users_other_sessions(
        api_client: Any, world: dict[str, Any], session: Session) -> None:
    first = login(api_client, "pia")
    second = login(api_client, "pia")
    other_user = login(api_client, "lonely")
    set_password(session, None, session.get(User, world["pi"].id), "a-new-password-1",
                 now=T0)
    session.commit()
    assert not logged_in(use(api_client, first))
    assert not logged_in(use(api_client, second))
    assert logged_in(use(api_client, other_user))
    records = session.scalars(select(PortalSessionRecord)
                              .where(PortalSessionRecord.user_id == world["pi"].id)).all()
    assert len(records) == 2 and all(r.revoked_at is not None for r in records)


def test_deactivation_ends_the_users_sessions(
        api_client: Any, world: dict[str, Any], session: Session) -> None:
    cookie = login(api_client, "pia")
    update_user(session, session.get(User, world["boot_op"].id),
                session.get(User, world["pi"].id), now=T0, is_active=False)
    session.commit()
    assert not logged_in(use(api_client, cookie))
    [rec] = session.scalars(select(PortalSessionRecord)).all()
    assert rec.revoked_at is not None


def test_csrf_token_of_another_session_is_refused(
        api_client: Any, world: dict[str, Any], session: Session) -> None:
    first = login(api_client, "pia")
    token_first = csrf(api_client.get("/projects/alpha").text)
    login(api_client, "pia")
    r = api_client.post("/projects/alpha/members", data={"username": "lonely",
                                                         "csrf_token": token_first},
                        follow_redirects=False)
    assert r.status_code == 403 and "security token" in r.text
    r = api_client.post("/projects/alpha/members", data={"username": "lonely"},
                        headers={"X-CSRF-Token": token_first}, follow_redirects=False)
    assert r.status_code == 403
    token_second = csrf(api_client.get("/projects/alpha").text)
    r = api_client.post("/projects/alpha/members", data={"username": "lonely",
                                                         "csrf_token": token_second},
                        follow_redirects=False)
    assert r.status_code == 303
    # The first session's token still works in the first session only.
    use(api_client, first)
    assert csrf(api_client.get("/projects/alpha").text) == token_first


def test_csrf_token_is_not_in_the_cookie(api_client: Any, world: dict[str, Any]) -> None:
    cookie = login(api_client, "pia")
    token = csrf(api_client.get("/").text)
    # The cookie is signed, not encrypted: anyone can read its payload.
    _, payload = URLSafeTimedSerializer("any key").loads_unsafe(cookie)
    assert token not in repr(payload) and token not in cookie
    assert isinstance(payload, dict) and set(payload) == {"sid"}


def test_idle_and_absolute_expiry(api_client: Any, world: dict[str, Any],
                                  clock: FakeClock) -> None:
    settings = Settings()
    login(api_client, "pia")
    clock.advance(settings.session_idle_s - 60)
    assert logged_in(api_client)  # activity keeps it
    clock.advance(settings.session_idle_s + 1)
    assert not logged_in(api_client)  # idle too long
    login(api_client, "pia")
    step = settings.session_idle_s / 2
    elapsed = 0.0
    while elapsed + step < settings.session_max_age_s:
        clock.advance(step)
        elapsed += step
        assert logged_in(api_client)
    clock.advance(settings.session_max_age_s - elapsed + 1)
    assert not logged_in(api_client)  # active, but older than the absolute limit
