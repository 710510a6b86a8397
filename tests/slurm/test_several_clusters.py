"""Several clusters behind one centre, on both real dev clusters at once (docs/slurm.md,
"Several clusters"): a job that names a cluster runs there; a routed job goes where it
starts soonest; a cluster that does not answer is marked unavailable with the reason
while the others go on, its jobs are neither lost nor charged twice, and it is back by
itself when it answers again.

The third cluster, "flaky", is the host's Slurm reached through a gate script (its
command prefix) that the test opens and closes: an unreachable cluster without touching
the shared daemons."""

from __future__ import annotations

import json
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slurm_helpers import CLUSTERS, SlurmCluster, ensure_unix_user, wait_until
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from factories import make_award, make_project, make_user
from rechenwerk.access.models import User
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.accounting.slurm_sync import sync
from rechenwerk.cli.main import app
from rechenwerk.clock import WallClock
from rechenwerk.config import Settings, get_settings
from rechenwerk.execution.clusters import ClusterRegistry
from rechenwerk.jobs.loop import SchedulerLoop
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.service import submit
from rechenwerk.jobs.specs import JobSpec
from waiting import DEADLINE_S

pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm")]
USER = "rwtest"
OLD, NEW = CLUSTERS["22.05"], CLUSTERS["24.11"]
runner = CliRunner()


@pytest.fixture
def centre(session_factory: sessionmaker[Session]) -> Iterator[tuple[sessionmaker[Session],
                                                                       str, Path, Settings]]:
    for c in (OLD, NEW):
        problem = c.problem()
        if problem:
            pytest.skip(problem)
        ensure_unix_user(USER, c)
    slug = f"rwt{uuid.uuid4().hex[:10]}"
    data = Path(f"/tmp/{slug}-data")
    data.mkdir(mode=0o777)
    data.chmod(0o777)
    gate = data / "gate"
    gate.write_text(f'#!/bin/sh\nif [ -e {data}/open ]; then exec "$@"; fi\n'
                    'echo "Unable to contact slurm controller (connect failure)" >&2\n'
                    "exit 1\n")
    gate.chmod(0o755)
    (data / "open").touch()
    (data / "clusters.yaml").write_text(
        "clusters:\n"
        "  - name: old\n    executor: slurm\n    partitions: [debug]\n"
        "  - name: new\n    executor: slurm\n    partitions: [debug]\n"
        f"    command_prefix: {shlex.join(NEW.prefix)}\n"
        f"    rest_url: {NEW.rest_unix}\n"
        f"  - name: flaky\n    executor: slurm\n    command_prefix: {gate}\n")
    settings = Settings(executor="slurm", data_dir=data, scheduler_interval_s=0.2,
                        clusters=str(data / "clusters.yaml"))
    now = datetime.now(UTC)
    with session_factory() as s:
        user = make_user(s, username=USER)
        make_award(s, make_project(s, pi=user, slug=slug), gpu_hours=100.0,
                   starts_at=now - timedelta(days=1))
        s.commit()
        for c in (OLD, NEW):  # the project's account on each cluster
            sync(s, c.cli(), now=now, projects=[slug])
        s.commit()
    try:
        yield session_factory, slug, data, settings
    finally:
        for c in (OLD, NEW):
            c.run("scancel", f"--account={slug}")
        for c in (OLD, NEW):
            wait_until(lambda c=c: not c.run("squeue", "-h", f"--account={slug}", "-o",
                                             "%A").stdout.strip(),
                       DEADLINE_S, "test jobs to leave the queue")
            c.run("sacctmgr", "-i", "delete", "account", slug)
        subprocess.run(["rm", "-rf", str(data)])


def _submit(factory: sessionmaker[Session], slug: str, settings: Settings,
            **spec: object) -> int:
    with factory() as s:
        user = s.scalars(select(User).where(User.username == USER)).one()
        job = submit(s, user, JobSpec.model_validate({"project": slug, **spec}),
                     clock=WallClock(), settings=settings)
        s.commit()
        return job.id


def _job(factory: sessionmaker[Session], job_id: int) -> Job:
    with factory() as s:
        job = s.get(Job, job_id)
        assert job is not None
        s.expunge(job)
        return job


def _ran_on(cluster: SlurmCluster, job: Job) -> bool:
    """The job's Slurm id is in that cluster's accounting, under the job's name."""
    out = cluster.run("sacct", "-n", "-X", "-P", "-j", job.backend_handle or "?",
                      "-o", "JobID,JobName").stdout
    return any(line.startswith(f"{job.backend_handle}|") and job.name in line
               for line in out.splitlines())


def test_named_routed_and_unreachable_clusters(
        centre: tuple[sessionmaker[Session], str, Path, Settings]) -> None:
    factory, slug, data, settings = centre
    registry = ClusterRegistry.from_settings(settings)
    assert registry.names == ("old", "new", "flaky")
    loop = SchedulerLoop(factory, registry.backend("old"), settings=settings,
                         clock=WallClock(), clusters=registry)
    released = data / "release"
    hold = ["sh", "-c", f"while [ ! -e {released} ]; do sleep 0.2; done"]
    try:
        # a job that names a cluster runs there
        named = _submit(factory, slug, settings, name="named", command=["true"], gpus=1,
                        walltime=120, cluster="new")
        # one on the flaky cluster (the old one's Slurm) that runs through its outage,
        # and two that fill the rest of the old cluster (2 nodes x 4 GPUs) until released
        through = _submit(factory, slug, settings, name="through", command=hold, gpus=1,
                          walltime=600, cluster="flaky")
        blocker = _submit(factory, slug, settings, name="blocker", command=hold, gpus=4,
                          walltime=600, cluster="old")
        blocker2 = _submit(factory, slug, settings, name="blocker2", command=hold, gpus=3,
                           walltime=600, cluster="old")

        def started() -> bool:
            loop.cycle()
            return (_job(factory, blocker).state == "running"
                    and _job(factory, blocker2).state == "running"
                    and _job(factory, through).state == "running"
                    and _job(factory, named).state == "completed")

        wait_until(started, DEADLINE_S, "the named jobs to run / complete", step=0.3)
        job = _job(factory, named)
        assert job.cluster == "new" and job.requested_cluster == "new"
        assert _ran_on(NEW, job)
        assert _job(factory, blocker).cluster == "old"

        # a routed job: the old cluster is full, so it starts sooner on the new one
        # ("flaky" is the old cluster too: just as full)
        routed = _submit(factory, slug, settings, name="routed", command=["true"], gpus=1,
                         walltime=120)
        wait_until(lambda: (loop.cycle(), _job(factory, routed).state)[1] == "completed",
                   DEADLINE_S, "the routed job to complete", step=0.3)
        job = _job(factory, routed)
        assert job.cluster == "new" and job.requested_cluster is None
        assert _ran_on(NEW, job)

        # the flaky cluster goes away: marked unavailable with the reason, the others go on
        (data / "open").unlink()
        loop.probe_clusters(force=True)
        status = registry.status("flaky")
        assert not status.available and "slurmctld" in (status.reason or ""), status
        waiting = _submit(factory, slug, settings, name="waits", command=["true"], gpus=1,
                          walltime=120, cluster="flaky")
        other = _submit(factory, slug, settings, name="other", command=["true"], gpus=1,
                        walltime=120)
        wait_until(lambda: (loop.cycle(), _job(factory, other).state)[1] == "completed",
                   DEADLINE_S, "a job elsewhere to complete during the outage", step=0.3)
        assert _job(factory, other).cluster == "new"  # never the unavailable one
        job = _job(factory, waiting)
        assert job.state == "pending" and job.backend_handle is None
        assert "cluster flaky is unavailable" in (job.reason or ""), job.reason
        assert _job(factory, through).state == "running"  # not lost, not ended

        # back by itself: the waiting job is handed over, the running one settles once
        released.touch()
        (data / "open").touch()

        def recovered() -> bool:
            loop.cycle()
            return {_job(factory, j).state for j in (waiting, through, blocker, blocker2)} == {
                "completed"}

        wait_until(recovered, DEADLINE_S, "the flaky cluster's jobs to complete", step=0.3)
        assert registry.status("flaky").available
        assert _job(factory, waiting).cluster == "flaky"
        with factory() as s:
            counts = dict(s.execute(select(UsageRecord.job_id, func.count())
                                    .group_by(UsageRecord.job_id)).all())
            clusters = dict(s.execute(select(UsageRecord.job_id, UsageRecord.cluster)).all())
        for j in (named, blocker, blocker2, through, routed, other, waiting):
            assert counts.get(j) == 1, (j, counts)
        assert clusters[named] == "new" and clusters[through] == "flaky"
    finally:
        released.touch()
        loop.stop()


def test_account_sync_runs_per_cluster(
        centre: tuple[sessionmaker[Session], str, Path, Settings], engine: Engine,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`rechenwerk slurm sync` on every declared Slurm cluster (or the ones named)."""
    _factory, slug, _data, settings = centre
    monkeypatch.setenv("RECHENWERK_DATABASE_URL",
                       engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RECHENWERK_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RECHENWERK_EXECUTOR", "slurm")
    monkeypatch.setenv("RECHENWERK_CLUSTERS", settings.clusters)
    get_settings.cache_clear()
    try:
        NEW.run("sacctmgr", "-i", "delete", "account", slug)  # drift on one cluster only
        res = runner.invoke(app, ["slurm", "sync", "--dry-run", "--json", "--project", slug,
                                  "--cluster", "old", "--cluster", "new"])
        assert res.exit_code == 0, res.output
        got = {c["cluster"]: [ch["action"] for ch in c["changes"]]
               for c in json.loads(res.output)["clusters"]}
        assert got == {"old": [], "new": ["add_account", "add_user"]}
        res = runner.invoke(app, ["slurm", "sync", "--project", slug, "--cluster", "new"])
        assert res.exit_code == 0, res.output
        assert "cluster new:" in res.output
        res = runner.invoke(app, ["slurm", "sync", "--dry-run", "--json", "--project", slug])
        assert res.exit_code == 0, res.output
        doc = json.loads(res.output)
        assert [c["cluster"] for c in doc["clusters"]] == ["old", "new", "flaky"]
        assert all(c["changes"] == [] for c in doc["clusters"])
        res = runner.invoke(app, ["slurm", "sync", "--cluster", "nope"])
        assert res.exit_code != 0 and "unknown cluster 'nope'" in res.output
        # the accounting import and the status, per cluster too
        res = runner.invoke(app, ["slurm", "import", "--json", "--cluster", "old",
                                  "--cluster", "new"])
        assert res.exit_code == 0, res.output
        assert [c["cluster"] for c in json.loads(res.output)["clusters"]] == ["old", "new"]
        res = runner.invoke(app, ["slurm", "status", "--json", "--cluster", "new"])
        assert res.exit_code == 0, res.output
        assert {n["name"] for n in json.loads(res.output)["nodes"]} == set(NEW.nodes)
    finally:
        get_settings.cache_clear()
