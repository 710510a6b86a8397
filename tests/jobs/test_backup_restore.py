"""Backup and restore on PostgreSQL, as docs/operations.md describes it: a populated
database (demo centre, jobs in every state, usage, audit), ``pg_dump -Fc``,
``pg_restore`` into a new database; the restored database holds the same rows in every
table and the same sequence positions, the API answers the same (jobs, balances settled
and committed, audit), and a real server on it carries on: it takes over the jobs,
runs the waiting one, accepts new jobs with ids above the old ones, and lets users log
in with their passwords."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from jobs_server import Server
from sqlalchemy import text
from sqlalchemy.engine import make_url

from factories import bearer
from populated import PROJECT, Populated, populate, snapshot
from rechenwerk.clock import FakeClock
from rechenwerk.config import Settings
from rechenwerk.store.session import make_engine, make_session_factory
from scratch_db import PG_ADMIN_URL, scratch_databases
from waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CLI = Path(sys.executable).parent / "rechenwerk"


def libpq(url: str) -> str:
    """The SQLAlchemy URL as pg_dump and pg_restore take it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def admin_url(url: str) -> str:
    """The same database as the superuser of the test server."""
    return make_url(url).set(username=make_url(PG_ADMIN_URL).username).render_as_string(
        hide_password=False)


def run(argv: list[str], **env: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})
    assert proc.returncode == 0, f"{argv}: {proc.stderr[-3000:]}"
    return proc.stdout


def sequences(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {r.sequencename: r.last_value for r in conn.execute(text(
                "SELECT sequencename, last_value FROM pg_sequences ORDER BY 1"))}
    finally:
        engine.dispose()


def api_view(url: str, populated: Populated, clock: FakeClock, tmp: Path) -> dict[str, Any]:
    """What users and operators see through the API: every job, every project's
    balance, the whole audit log."""
    from rechenwerk.app import create_app

    settings = Settings(database_url=url, data_dir=tmp, scheduler_enabled=False)
    op = bearer(populated.tokens["operator"])
    out: dict[str, Any] = {}
    with TestClient(create_app(settings, clock=clock)) as client:
        def get(path: str) -> Any:
            r = client.get(path, headers=op)
            assert r.status_code == 200, f"{path}: {r.text}"
            return r.json()

        out["jobs"] = get("/api/v1/jobs?limit=100")
        out["audit"] = get("/api/v1/audit?limit=500")
        projects = [p["slug"] for p in get("/api/v1/projects?limit=100")["items"]]
        out["balances"] = {slug: get(f"/api/v1/projects/{slug}/balance")
                           for slug in projects}
    return out


@pytest.mark.skipif(not (shutil.which("pg_dump") and shutil.which("pg_restore")),
                    reason="pg_dump/pg_restore are not installed")
def test_dump_restore_and_the_service_carries_on(tmp_path: Path) -> None:
    with scratch_databases("postgresql", tmp_path) as dbs:
        # The service's own role, no superuser: it owns the database and its tables.
        role = dbs.new_role("svc")
        live = dbs.new("live", owner=role)
        run([str(CLI), "admin", "db", "upgrade"], RECHENWERK_DATABASE_URL=live,
            RECHENWERK_DATA_DIR=str(tmp_path / "cli"))
        engine = make_engine(live)
        try:
            with make_session_factory(engine)() as session:
                populated = populate(session, now=datetime.now(UTC).replace(microsecond=0),
                                     settings=Settings(data_dir=tmp_path / "live",
                                                       database_url=live))
                session.commit()
        finally:
            engine.dispose()

        # Backup: a consistent snapshot, in pg_dump's compressed custom format (as the
        # superuser, as docs/operations.md does with `sudo -u postgres`).
        dump = tmp_path / "rechenwerk.dump"
        run(["pg_dump", "--format=custom", "--file", str(dump), libpq(admin_url(live))])
        # Restore into a new, empty database of the service's role; the objects become
        # the role's (--no-owner --role), so the server works on it without superuser.
        restored = dbs.new("restored", owner=role)
        run(["pg_restore", "--no-owner", "--role", role, "--exit-on-error",
             "--single-transaction", "--dbname", libpq(admin_url(restored)), str(dump)])

        # The same rows in every table (alembic_version included), the same sequences.
        engine_live, engine_restored = make_engine(live), make_engine(restored)
        try:
            rows = snapshot(engine_live)
            assert all(rows.values()), "populated.py leaves a table empty"
            assert snapshot(engine_restored) == rows
            with engine_live.connect() as a, engine_restored.connect() as b:
                version = "SELECT version_num FROM alembic_version"
                assert a.execute(text(version)).all() == b.execute(text(version)).all()
        finally:
            engine_live.dispose()
            engine_restored.dispose()
        assert sequences(restored) == sequences(live)
        assert sequences(live)["jobs_id_seq"] == populated.max_job_id

        # The API sees the same jobs, balances and audit log.
        clock = FakeClock(datetime.now(UTC))
        before = api_view(live, populated, clock, tmp_path / "view-live")
        assert api_view(restored, populated, clock, tmp_path / "view-restored") == before
        balance = before["balances"][PROJECT]
        assert balance["settled_gpu_hours"] > 0 and balance["committed_gpu_hours"] > 0
        assert len(before["jobs"]["items"]) == len(populated.jobs)

        _service_carries_on(restored, populated, before, tmp_path)


def _service_carries_on(url: str, populated: Populated, before: dict[str, Any],
                        tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()  # shared with the jobs (Server opens it to them)
    server = Server(tmp_path / "srv" / "var", url, cluster="1x4:A100-80GB")
    server.start()
    try:
        greta = httpx.Client(base_url=server.url, timeout=60,
                             headers=bearer(populated.tokens["greta"]))
        op = httpx.Client(base_url=server.url, timeout=60,
                          headers=bearer(populated.tokens["operator"]))
        jobs = populated.jobs

        def state(job_id: int) -> str:
            r = greta.get(f"/api/v1/jobs/{job_id}")
            assert r.status_code == 200, r.text
            return str(r.json()["state"])

        # The job that was running when the backup was taken ran on the old machine:
        # the new server does not know its run and ends it (reason "lost").
        wait_for(lambda: state(jobs["running"]) == "failed", "the lost run to be failed")
        # The waiting job runs here.
        wait_for(lambda: state(jobs["pending"]) == "completed", "the pending job to run")
        for name in ("completed", "failed", "cancelled"):
            assert state(jobs[name]) == name

        # New work gets new ids: the sequences came with the backup.
        r = greta.post("/api/v1/jobs", json={"name": "after-restore", "project": PROJECT,
                                             "command": "true", "gpus": 1,
                                             "walltime": "5m"})
        assert r.status_code == 201, r.text
        new_id = int(r.json()["id"])
        assert new_id > populated.max_job_id
        wait_for(lambda: state(new_id) == "completed", "the new job to run")

        # Passwords (argon2 hashes) came along: a password login works.
        login = httpx.post(server.url + "/api/v1/auth/token",
                           json={"username": "jonas", "password": "jonas-demo"}, timeout=60)
        assert login.status_code == 201, login.text

        # Usage settled on the restored database adds to what the backup held.
        after = greta.get(f"/api/v1/projects/{PROJECT}/balance").json()
        assert after["settled_gpu_hours"] > before["balances"][PROJECT]["settled_gpu_hours"]
        audit = op.get("/api/v1/audit", params={"limit": 500}).json()
        old_ids = {e["id"] for e in before["audit"]["items"]}
        assert old_ids < {e["id"] for e in audit["items"]}
        assert audit["total"] > before["audit"]["total"]
    finally:
        server.stop()
