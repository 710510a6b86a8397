"""Revocation takes effect in every server process at once: two real ``rechenwerk
server`` processes over one database (SQLite and PostgreSQL), each with its own token
cache. A token both have just served (so both cached it) is revoked through one; the
other refuses it at the very next request, as it refuses a change once a new AUP is
published through the first (the auth generation, access/auth_generation.py). Before,
the other process kept serving a revoked token for up to 5 s from its cache."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from rechenwerk.access.aup import accept_aup, publish_aup
from rechenwerk.access.models import Organization
from rechenwerk.access.security import create_token
from rechenwerk.access.users import create_user
from rechenwerk.store.migrate import upgrade
from rechenwerk.store.session import make_engine, make_session_factory, session_scope
from waiting import wait_for

BIN = Path(sys.executable).parent / "rechenwerk"
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(tmp: Path, db_url: str, name: str) -> tuple[str, subprocess.Popen[bytes]]:
    port = _free_port()
    env = {**os.environ, "RECHENWERK_DATA_DIR": str(tmp / name),
           "RECHENWERK_DATABASE_URL": db_url, "RECHENWERK_SCHEDULER_ENABLED": "false",
           "RECHENWERK_SECRET_KEY": secrets.token_hex(32)}
    log = open(tmp / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([str(BIN), "server", "--port", str(port), "--log-level",
                             "warning"], env=env, stdout=log, stderr=log,
                            start_new_session=True)
    log.close()
    return f"http://127.0.0.1:{port}", proc


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def two_servers(request: pytest.FixtureRequest,
                tmp_path: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    if request.param == "sqlite":
        db_url = f"sqlite:///{tmp_path / 'rechenwerk.db'}"
    else:  # a database of its own, migrated like a real centre's
        db_url = request.getfixturevalue("pg_databases").create("rw_revoke")
    upgrade(db_url)
    engine = make_engine(db_url)
    now = datetime.now(UTC)
    with session_scope(make_session_factory(engine)) as s:
        org = Organization(name="Uni", kind="university", country="DE", created_at=now)
        s.add(org)
        s.flush()
        op = create_user(s, None, username="op", email="op@x.eu", organization=org.id,
                         is_operator=True, now=now)
        pi = create_user(s, None, username="pi", email="pi@x.eu", organization=org.id,
                         now=now)
        aup = publish_aup(s, op, "v1", now=now)
        accept_aup(s, op, aup.version, now=now)
        accept_aup(s, pi, aup.version, now=now)
        tokens = {"op": create_token(s, op, name="t", now=now)[1],
                  "pi": create_token(s, pi, name="t", now=now)[1],
                  "pi2": create_token(s, pi, name="t2", now=now)[1]}
    engine.dispose()
    started = [_start(tmp_path, db_url, "a"), _start(tmp_path, db_url, "b")]
    try:
        for url, proc in started:
            def up(url: str = url, proc: subprocess.Popen[bytes] = proc) -> bool:
                assert proc.poll() is None, (tmp_path / "a.log").read_text()[-2000:]
                try:
                    return httpx.get(url + "/api/v1/health", timeout=5).status_code == 200
                except httpx.HTTPError:
                    return False
            wait_for(up, f"the server at {url} to come up", step=0.1)
        yield started[0][0], started[1][0], tokens
    finally:
        for _, proc in started:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


def _me(url: str, token: str) -> httpx.Response:
    return httpx.get(url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"},
                     timeout=30)


def test_revoked_in_one_process_refused_at_once_in_the_other(
        two_servers: tuple[str, str, dict[str, str]]) -> None:
    a, b, tokens = two_servers
    for url in (a, b, a, b):  # both processes have it cached now
        assert _me(url, tokens["pi"]).status_code == 200
    listed = httpx.get(a + "/api/v1/tokens", timeout=30,
                       headers={"Authorization": f"Bearer {tokens['pi']}"}).json()
    token_id = next(t["id"] for t in listed if t["name"] == "t")
    r = httpx.delete(f"{a}/api/v1/tokens/{token_id}", timeout=30,
                     headers={"Authorization": f"Bearer {tokens['pi']}"})
    assert r.status_code == 204
    r = _me(b, tokens["pi"])  # the very next request, well within the old 5 s
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert _me(a, tokens["pi"]).status_code == 401
    assert _me(b, tokens["pi2"]).status_code == 200  # the user's other token still works


def test_new_aup_published_in_one_process_gates_the_other_at_once(
        two_servers: tuple[str, str, dict[str, str]]) -> None:
    a, b, tokens = two_servers
    head = {"Authorization": f"Bearer {tokens['pi']}"}
    body = {"name": "laptop", "expires_in_days": 1}
    for url in (a, b):
        r = httpx.post(url + "/api/v1/tokens", json=body, headers=head, timeout=30)
        assert r.status_code == 201, r.text
    r = httpx.post(a + "/api/v1/aup", json={"text": "v2"}, timeout=30,
                   headers={"Authorization": f"Bearer {tokens['op']}"})
    assert r.status_code == 201 and r.json()["version"] == 2
    r = httpx.post(b + "/api/v1/tokens", json=body, headers=head, timeout=30)
    assert r.status_code == 403 and r.json()["code"] == "aup_not_accepted"
    r = httpx.post(b + "/api/v1/aup/accept", json={"version": 2}, headers=head, timeout=30)
    assert r.status_code == 200
    r = httpx.post(a + "/api/v1/tokens", json=body, headers=head, timeout=30)
    assert r.status_code == 201, r.text
