"""The probe job through the real server: a plain member's job, sandboxed by default,
tries every leak found when local jobs ran as the server's account, and finds nothing:
not the operator's token in the data directory, not another user's job, its workdir or
logs, not the server's secrets in any /proc/<pid>/environ. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from jobs_server import Server
from sqlalchemy.orm import Session, sessionmaker

from factories import make_award, make_project, make_token, make_user
from rechenwerk.clock import WallClock
from rechenwerk.store.session import session_scope
from waiting import hold_command, release, wait_for

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap (Debian package bubblewrap) is missing")]
PROBE = Path(__file__).parents[1] / "execution" / "sandbox_probe.py"


def test_probe_job_through_the_server(session_factory: sessionmaker[Session], db_url: str,
                                      tmp_path: Path) -> None:
    now = WallClock().now()
    with session_scope(session_factory) as s:
        alice, bob = make_user(s), make_user(s)
        mine, theirs = make_project(s, pi=alice), make_project(s, pi=bob)
        for p in (mine, theirs):
            make_award(s, p, gpu_hours=100, starts_at=now - timedelta(days=1))
        operator = make_token(s, make_user(s, operator=True), now=now)
        tokens = {"alice": make_token(s, alice, now=now), "bob": make_token(s, bob, now=now)}
        slugs = {"alice": mine.slug, "bob": theirs.slug}
    data = tmp_path / "var"
    server = Server(data, db_url, cluster="1x4:A100-80GB")
    server.env["RECHENWERK_SECRET_KEY"] = secret = "probe-" + server.env["RECHENWERK_SECRET_KEY"]
    data.mkdir(mode=0o700)
    (data / "demo-tokens.json").write_text(json.dumps({"operator": operator}))
    probe = tmp_path / "probe.py"
    shutil.copy(PROBE, probe)
    released = tmp_path / "release-bob"
    server.start()
    try:
        def submit(who: str, command: list[str]) -> int:
            r = httpx.post(f"{server.url}/api/v1/jobs", timeout=60,
                           headers={"Authorization": f"Bearer {tokens[who]}"},
                           json={"name": f"{who}-job", "project": slugs[who], "gpus": 1,
                                 "walltime": "10m", "command": command})
            assert r.status_code == 201, r.text
            return int(r.json()["id"])

        # Bob's job keeps a secret in its own folder and log while Alice's probe runs.
        bob_job = submit("bob", hold_command(released, before=(
            "open('secret.txt', 'w').write('bob-secret'); print('bob-secret', flush=True)")))
        bob_dir = data / "logs" / str(bob_job)
        wait_for(lambda: (bob_dir / "secret.txt").exists(), "bob's job to write its secret")
        alice_job = submit("alice", [sys.executable, str(probe), str(data), str(bob_dir),
                                     str(bob_dir / "1"), str(server.proc.pid if server.proc
                                                             else 0)])
        out = data / "logs" / str(alice_job) / "1" / "stdout.log"
        wait_for(lambda: out.exists() and out.read_text().strip(), "the probe's report")
        got = json.loads(out.read_text())
    finally:
        release(released)
        server.stop()

    for key in ("tokens", "database", "runs", "other_workdir", "other_log"):
        assert isinstance(got[key], dict) and "refused" in got[key], (key, got[key])
    assert got["logs"] == [str(alice_job)]
    assert got["signal_server"] == {"refused": "ProcessLookupError"}
    seen = json.dumps(got["environs"]) + json.dumps(got["env"])
    assert secret not in seen and operator not in seen and "bob-secret" not in seen
    assert "RECHENWERK_DATABASE_URL" not in seen and "RECHENWERK_SECRET_KEY" not in seen
    assert got["own_workdir"] == "written"
    assert not (data / "planted").exists()
