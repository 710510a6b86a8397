"""Logging in with a username and password: the server exchanges them for a new API token
(``POST /api/v1/auth/token``) and ``rechenwerk login --username`` saves it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from factories import make_user
from rechenwerk.access.security import hash_password
from rechenwerk.cli import client
from rechenwerk.cli.main import app


@pytest.fixture
def greta(session: Session) -> str:
    make_user(session, username="greta", password_hash=hash_password("greta-secret"))
    session.commit()
    return "greta"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api_client: Any) -> Iterator[Path]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("RECHENWERK_API_URL", raising=False)
    monkeypatch.delenv("RECHENWERK_TOKEN", raising=False)
    client.use_transport(api_client._transport)  # the CLI talks to the in-process app
    yield tmp_path
    client.use_transport(None)


def test_password_exchange_gives_a_working_expiring_token(api_client: Any, greta: str) -> None:
    r = api_client.post("/api/v1/auth/token",
                        json={"username": greta, "password": "greta-secret", "name": "laptop"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["user"] == "greta" and body["name"] == "laptop"
    assert body["expires_at"] is not None  # tokens from passwords always expire
    me = api_client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200 and me.json()["username"] == "greta"


@pytest.mark.parametrize("username,password", [("greta", "wrong"), ("nobody", "greta-secret")])
def test_wrong_password_or_user_gives_one_message(api_client: Any, greta: str,
                                                  username: str, password: str) -> None:
    r = api_client.post("/api/v1/auth/token", json={"username": username, "password": password})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"] == "wrong username or password"  # names do not leak


def test_cli_login_with_password_saves_the_token(home: Path, greta: str) -> None:
    result = CliRunner().invoke(app, ["login", "--url", "http://testserver", "-u", "greta"],
                                input="greta-secret\n")
    assert result.exit_code == 0, result.output
    assert "logged in to http://testserver as greta" in result.output
    saved = json.loads((home / "rechenwerk" / "credentials.json").read_text())
    assert saved["url"] == "http://testserver" and saved["token"].startswith("rw")


def test_cli_login_wrong_password_is_one_line_and_exit_4(home: Path, greta: str) -> None:
    result = CliRunner().invoke(app, ["login", "--url", "http://testserver", "-u", "greta"],
                                input="nope\n")
    assert result.exit_code == 4
    assert "wrong username or password" in result.output
    assert "Traceback" not in result.output
    assert not (home / "rechenwerk" / "credentials.json").exists()


def test_repeated_failures_lock_the_username_for_a_while(
        api_client: Any, greta: str, session: Session, clock: Any) -> None:
    from sqlalchemy import func, select

    from rechenwerk.access.models import AuditEntry
    from rechenwerk.access.security import LOGIN_FAILURE_WINDOW, LOGIN_MAX_FAILURES

    def login(password: str) -> Any:
        return api_client.post("/api/v1/auth/token",
                               json={"username": greta, "password": password})

    for _ in range(LOGIN_MAX_FAILURES):
        assert login("guess").status_code == 401
        clock.advance(10)
    # Locked now, even with the right password; the answer says for how long.
    r = login("greta-secret")
    assert r.status_code == 429, r.text
    assert r.json()["code"] == "too_many_attempts"
    assert "try again in 15 min" in r.json()["detail"]
    failed = session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "login.failed", AuditEntry.entity_id == greta))
    assert failed == LOGIN_MAX_FAILURES  # visible to operators in the audit log
    # Other users are not affected; after the window the right password works again.
    assert api_client.post("/api/v1/auth/token", json={
        "username": "nobody", "password": "x"}).status_code == 401
    clock.advance(LOGIN_FAILURE_WINDOW.total_seconds())
    assert login("greta-secret").status_code == 201


def test_cli_login_when_locked_is_one_line(home: Path, greta: str) -> None:
    from rechenwerk.access.security import LOGIN_MAX_FAILURES

    for _ in range(LOGIN_MAX_FAILURES):
        CliRunner().invoke(app, ["login", "--url", "http://testserver", "-u", "greta"],
                           input="nope\n")
    result = CliRunner().invoke(app, ["login", "--url", "http://testserver", "-u", "greta"],
                                input="greta-secret\n")
    assert result.exit_code == 4
    assert "too many failed logins for 'greta'" in result.output
    assert "Traceback" not in result.output
