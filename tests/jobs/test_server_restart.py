"""Restart safety with a real server process: SIGKILL the server while jobs run, let
one finish meanwhile, start it again: no job lost, none runs twice, the finished job has
its real end time and is settled."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from jobs_server import Server
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from factories import bearer, make_award, make_project, make_token, make_user
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.clock import WallClock
from rechenwerk.store.session import session_scope

pytestmark = pytest.mark.slow


def _job_cmd(counter: Path, seconds: float) -> list[str]:
    code = (f"import time; open({str(counter)!r}, 'a').write('start\\n'); "
            f"print('working', flush=True); time.sleep({seconds})")
    return [sys.executable, "-c", code]


def _wait(fn: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkill_and_restart(session_factory: sessionmaker[Session], db_url: str,
                             tmp_path: Path) -> None:
    now = WallClock().now()
    with session_scope(session_factory) as s:
        pi = make_user(s)
        project = make_project(s, pi=pi)
        make_award(s, project, gpu_hours=100, starts_at=now - timedelta(days=1))
        headers, slug = bearer(make_token(s, pi, now=now)), project.slug
    data = tmp_path / "var"
    server = Server(data, db_url, cluster="1x4:A100-80GB")
    server.start()
    try:
        http = httpx.Client(base_url=server.url, headers=headers, timeout=10)
        counters = {n: tmp_path / f"{n}.count" for n in ("short", "long", "waits")}

        def submit(name: str, gpus: int, seconds: float) -> int:
            r = http.post("/api/v1/jobs", json={
                "name": name, "project": slug, "gpus": gpus, "walltime": "10m",
                "command": _job_cmd(counters[name], seconds)})
            assert r.status_code == 201, r.text
            return int(r.json()["id"])

        short = submit("short", 2, 3.0)   # finishes while the server is down
        long = submit("long", 2, 8.0)     # still running after the restart
        waits = submit("waits", 4, 0.5)   # needs the whole node: waits for both

        def states() -> dict[int, str]:
            return {i: http.get(f"/api/v1/jobs/{i}").json()["state"]
                    for i in (short, long, waits)}

        _wait(lambda: states()[short] == "running" and states()[long] == "running", 60,
              "short and long to run")
        assert states()[waits] == "pending"
        server.kill()
        status_file = data / "runs" / f"{short}.1" / "status.json"
        _wait(status_file.exists, 60, "the short job to finish while the server is down")
        real = json.loads(status_file.read_text())
        time.sleep(0.5)
        restarted_at = WallClock().now()
        server.start()
        final = _wait(lambda: (lambda s: s if set(s.values()) <= {"completed", "failed"}
                               else None)(states()), 60, "all jobs to finish")
        assert final == {short: "completed", long: "completed", waits: "completed"}
        for name, path in counters.items():
            assert path.read_text() == "start\n", f"{name} ran more than once"
        j = http.get(f"/api/v1/jobs/{short}").json()
        ended = datetime.fromisoformat(j["ended_at"])
        assert ended == datetime.fromisoformat(real["ended_at"])  # its real end ...
        assert ended < restarted_at  # ... not the time the restarted server noticed
        assert j["attempt"] == 1
        with session_scope(session_factory) as s:
            recs = s.scalars(select(UsageRecord).order_by(UsageRecord.job_id)).all()
            assert [r.job_id for r in recs] == [short, long, waits]
            short_rec = recs[0]
            assert short_rec.ended_at == ended
            assert short_rec.gpu_hours == pytest.approx(
                2 * (short_rec.ended_at - short_rec.started_at).total_seconds() / 3600)
    finally:
        server.stop()
