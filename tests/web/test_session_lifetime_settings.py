"""The portal session's idle and absolute lifetimes are settings
(``RECHENWERK_SESSION_IDLE_S``, ``RECHENWERK_SESSION_MAX_AGE_S``): a server configured
with short ones ends sessions after exactly those times (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from test_pages import _hash, login

from factories import make_user
from rechenwerk.app import create_app
from rechenwerk.clock import FakeClock
from rechenwerk.config import Settings


def _logged_in(client: TestClient) -> bool:
    return bool(client.get("/settings", follow_redirects=False).status_code == 200)


def test_configured_lifetimes_are_honoured(monkeypatch: pytest.MonkeyPatch, db_url: str,
                                           session_factory: sessionmaker[Session],
                                           session: Session, tmp_path: Path) -> None:
    make_user(session, username="pia", password_hash=_hash())
    session.commit()
    monkeypatch.setenv("RECHENWERK_SESSION_IDLE_S", "600")
    monkeypatch.setenv("RECHENWERK_SESSION_MAX_AGE_S", "1500")
    settings = Settings(data_dir=tmp_path / "var", database_url=db_url)
    assert (settings.session_idle_s, settings.session_max_age_s) == (600, 1500)
    clock = FakeClock()
    # Not as a context manager: the lifespan (background loops) does not run.
    client = TestClient(create_app(settings, session_factory=session_factory, clock=clock))
    try:
        login(client, "pia")
        clock.advance(599)
        assert _logged_in(client)
        clock.advance(601)
        assert not _logged_in(client)  # idle longer than 600 s
        login(client, "pia")
        for _ in range(2):
            clock.advance(500)
            assert _logged_in(client)  # active: each request resets the idle timer
        clock.advance(501)
        assert not _logged_in(client)  # 1501 s after login: past the absolute limit
    finally:
        client.close()
