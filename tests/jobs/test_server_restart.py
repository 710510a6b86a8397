"""Restart safety with a real server process: SIGKILL the server while jobs run, let
one finish meanwhile, start it again: no job lost, none runs twice, the finished job has
its real end time and is settled."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from jobs_server import Server
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from factories import bearer, make_award, make_project, make_token, make_user
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.clock import WallClock
from rechenwerk.store.session import session_scope
from waiting import hold_command, release, wait_for

pytestmark = pytest.mark.slow


def _job_cmd(counter: Path, release_file: Path | None) -> list[str]:
    """Counts its starts; runs until ``release_file`` exists (None: ends at once)."""
    start = (f"open({str(counter)!r}, 'a').write('start\\n'); "
             "print('working', flush=True)")
    if release_file is None:
        return [sys.executable, "-c", start]
    return hold_command(release_file, before=start)


def test_sigkill_and_restart(session_factory: sessionmaker[Session], db_url: str,
                             tmp_path: Path) -> None:
    now = WallClock().now()
    with session_scope(session_factory) as s:
        pi = make_user(s)
        project = make_project(s, pi=pi)
        make_award(s, project, gpu_hours=100, starts_at=now - timedelta(days=1))
        headers, slug = bearer(make_token(s, pi, now=now)), project.slug
    data = tmp_path / "var"
    releases = {n: tmp_path / f"release-{n}" for n in ("short", "long")}
    server = Server(data, db_url, cluster="1x4:A100-80GB")
    server.start()
    try:
        http = httpx.Client(base_url=server.url, headers=headers, timeout=60)
        counters = {n: tmp_path / f"{n}.count" for n in ("short", "long", "waits")}

        def submit(name: str, gpus: int) -> int:
            r = http.post("/api/v1/jobs", json={
                "name": name, "project": slug, "gpus": gpus, "walltime": "10m",
                "command": _job_cmd(counters[name], releases.get(name))})
            assert r.status_code == 201, r.text
            return int(r.json()["id"])

        # Each job runs until the test releases it, so a slow machine cannot let one
        # end before the step that needs it running.
        short = submit("short", 2)   # finishes while the server is down
        long = submit("long", 2)     # still running after the restart
        waits = submit("waits", 4)   # needs the whole node: waits for both

        def states() -> dict[int, str]:
            return {i: http.get(f"/api/v1/jobs/{i}").json()["state"]
                    for i in (short, long, waits)}

        wait_for(lambda: (lambda s: s[short] == s[long] == "running")(states()),
                 "short and long to run")
        assert states()[waits] == "pending"
        server.kill()
        release(releases["short"])
        status_file = data / "runs" / f"{short}.1" / "status.json"
        wait_for(status_file.exists, "the short job to finish while the server is down")
        real = json.loads(status_file.read_text())
        restarted_at = WallClock().now()
        server.start()
        # The restarted server notices the short job's end and keeps the long one.
        wait_for(lambda: states()[short] == "completed", "the short job to be completed")
        assert states()[long] == "running" and states()[waits] == "pending"
        release(releases["long"])
        final = wait_for(lambda: (lambda s: s if set(s.values()) <= {"completed", "failed"}
                                  else None)(states()), "all jobs to finish")
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
        for path in releases.values():
            release(path)  # no job of a failed run keeps waiting
        server.stop()
