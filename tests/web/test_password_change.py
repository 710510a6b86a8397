"""Changing one's own password in the portal (SQLite and PostgreSQL): the current
password is checked, the user's other sessions end at once (a copied cookie stops
working), this browser gets a new session, and the new password logs in."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from test_pages import PASSWORD, _hash, csrf, login

from factories import make_user
from rechenwerk.access.models import AuditEntry, User
from rechenwerk.access.security import verify_password

NEW = "a-brand-new-password"


def _use(client: Any, cookie: str) -> Any:
    client.cookies.clear()
    client.cookies.set("rw_session", cookie)
    return client


def _logged_in(client: Any) -> bool:
    return bool(client.get("/settings", follow_redirects=False).status_code == 200)


def test_change_ends_other_sessions_and_keeps_this_one(api_client: Any,
                                                       session: Session) -> None:
    make_user(session, username="pia", password_hash=_hash())
    session.commit()
    other = login(api_client, "pia").cookies.get("rw_session")
    mine = login(api_client, "pia").cookies.get("rw_session")
    token = csrf(api_client.get("/settings").text)
    r = api_client.post("/settings/password", follow_redirects=False, data={
        "current_password": PASSWORD, "new_password": NEW, "new_password_repeat": NEW,
        "csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == "/settings"
    renewed = r.cookies.get("rw_session")
    assert renewed and renewed != mine
    page = api_client.get("/settings", follow_redirects=False)
    assert page.status_code == 200  # this browser: the new session
    assert "every other session of yours has ended" in page.text
    assert not _logged_in(_use(api_client, other))  # another browser's copy
    assert not _logged_in(_use(api_client, mine))  # the old cookie of this browser
    session.expire_all()
    user = session.scalars(select(User).where(User.username == "pia")).one()
    assert verify_password(user.password_hash, NEW)
    assert session.scalars(select(AuditEntry).where(
        AuditEntry.action == "user.set_password")).one().actor == "pia"


def test_wrong_current_password_or_mismatch_changes_nothing(api_client: Any,
                                                            session: Session) -> None:
    make_user(session, username="pia", password_hash=_hash())
    session.commit()
    cookie = login(api_client, "pia").cookies.get("rw_session")
    token = csrf(api_client.get("/settings").text)
    for data, field, text in (
            ({"current_password": "wrong-one!", "new_password": NEW,
              "new_password_repeat": NEW}, "current_password", "Wrong current password"),
            ({"current_password": PASSWORD, "new_password": NEW,
              "new_password_repeat": NEW + "x"}, "new_password_repeat", "differ"),
            ({"current_password": PASSWORD, "new_password": "short",
              "new_password_repeat": "short"}, "new_password", "too short")):
        r = api_client.post("/settings/password", data={**data, "csrf_token": token})
        assert r.status_code == 422 and f'data-testid="error-{field}"' in r.text, data
        assert text in r.text
        assert NEW not in r.text  # passwords are never echoed back
    r = api_client.post("/settings/password", follow_redirects=False, data={
        "current_password": PASSWORD, "new_password": NEW, "new_password_repeat": NEW})
    assert r.status_code == 403  # no CSRF token
    assert _logged_in(_use(api_client, cookie))
    session.expire_all()
    user = session.scalars(select(User).where(User.username == "pia")).one()
    assert verify_password(user.password_hash, PASSWORD)
    assert session.scalars(select(AuditEntry).where(
        AuditEntry.action == "login.failed")).one().changes["via"] == "portal-password-change"
