"""Rechenwerk on real Slurm end to end: account sync (with drift), jobs through the
scheduler loop to completion, usage settled once from slurmdbd (also for jobs submitted
to Slurm directly), and a job over its GPU-minute limit waiting with Slurm's reason."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slurm_helpers import (
    SlurmCluster,
    active,
    cli,
    ensure_unix_user,
    rest_formats,
    rest_jwt,
    rest_unix,
    sh,
    slurm_settings,
    wait_until,
)
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from factories import make_award, make_project, make_user
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.accounting.slurm_sync import sync
from rechenwerk.clock import WallClock
from rechenwerk.execution.slurm import SlurmBackend
from rechenwerk.execution.slurm.types import SlurmTransport
from rechenwerk.jobs.loop import SchedulerLoop
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.service import submit
from rechenwerk.jobs.slurm_import import import_finished_jobs
from rechenwerk.jobs.specs import JobSpec
from waiting import DEADLINE_S

# one xdist group: these tests share one cluster and some stop daemons
pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm")]
USER = "rwtest"


@pytest.fixture
def env(
    slurm_up: SlurmCluster,
    session_factory: sessionmaker[Session],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[sessionmaker[Session], str, Path]]:
    ensure_unix_user(USER)
    slug = f"rwt{uuid.uuid4().hex[:10]}"
    data = Path(f"/tmp/{slug}-data")
    data.mkdir(mode=0o777)
    data.chmod(0o777)
    now = datetime.now(UTC)
    with session_factory() as s:
        user = make_user(s, username=USER)
        make_award(
            s,
            make_project(s, pi=user, slug=slug),
            gpu_hours=100.0,
            starts_at=now - timedelta(days=1),
        )
        s.commit()
    try:
        yield session_factory, slug, data
    finally:
        active().run("scancel", f"--account={slug}")
        wait_until(
            lambda: not sh("squeue", "-h", f"--account={slug}", "-o", "%A", check=False).strip(),
            DEADLINE_S,
            "test jobs to leave the queue",
        )
        active().run("sacctmgr", "-i", "delete", "account", slug)
        subprocess.run(["rm", "-rf", str(data)])


def _loop(factory: sessionmaker[Session], data: Path) -> SchedulerLoop:
    settings = slurm_settings(data_dir=data, executor="slurm", scheduler_interval_s=0.2)
    return SchedulerLoop(
        factory, SlurmBackend(cli()), settings=settings, clock=WallClock()
    )


def _submit(factory: sessionmaker[Session], data: Path, slug: str, **spec: object) -> int:
    from rechenwerk.access.models import User

    with factory() as s:
        user = s.scalars(select(User).where(User.username == USER)).one()
        job = submit(
            s,
            user,
            JobSpec.model_validate({"project": slug, **spec}),
            clock=WallClock(),
            settings=slurm_settings(data_dir=data, executor="slurm"),
        )
        s.commit()
        return job.id


def _job(factory: sessionmaker[Session], job_id: int) -> Job:
    with factory() as s:
        job = s.get(Job, job_id)
        assert job is not None
        s.expunge(job)
        return job


@pytest.mark.parametrize(
    "kind", ["cli", "rest-unix", "rest-jwt", "rest-unix-v0.0.40", "rest-unix-v0.0.41"]
)
def test_sync_creates_accounts_and_reports_drift(
    env: tuple[sessionmaker[Session], str, Path], kind: str
) -> None:
    """The same sync through sacctmgr and through slurmrestd's /slurmdb/ API: in the
    newest format both sides know (v0.0.38 on 22.05, v0.0.42 on 24.11 and 26.05) and, on
    24.11, in the older formats its slurmrestd also offers."""
    factory, slug, _ = env
    now = datetime.now(UTC)
    if kind.startswith("rest-unix-v"):
        fmt = kind.removeprefix("rest-unix-")
        offered = rest_formats()
        if fmt not in offered:
            pytest.skip(f"Slurm {active().id}'s slurmrestd offers {', '.join(offered)}, "
                        f"not {fmt}")
        t: SlurmTransport = rest_unix(api_version=fmt)
    else:
        t = {"cli": cli, "rest-unix": rest_unix, "rest-jwt": rest_jwt}[kind]()
    with factory() as s:
        plan = sync(s, t, now=now, dry_run=True, projects=[slug])
        assert [(c.action, c.user) for c in plan.changes] == [
            ("add_account", None),
            ("add_user", USER),
        ]
        assert plan.changes[0].desired == str(100 * 60)
        assert not sh("sacctmgr", "-n", "-P", "show", "account", slug).strip()  # dry run
        sync(s, t, now=now, projects=[slug])
        # idempotent
        assert sync(s, t, now=now, dry_run=True, projects=[slug]).changes == []
        # drift made by hand
        sh(
            "sacctmgr",
            "-i",
            "modify",
            "account",
            "where",
            f"name={slug}",
            "set",
            "GrpTRESMins=gres/gpu=7",
        )
        sh("sacctmgr", "-i", "add", "user", "root", f"account={slug}")
        drift = sync(s, t, now=now, dry_run=True, projects=[slug])
        assert {(c.action, c.current, c.desired, c.user) for c in drift.changes} == {
            ("set_limit", "7", "6000", None),
            ("remove_user", None, None, "root"),
        }
        assert all(c.drift for c in drift.changes)
        sync(s, t, now=now, projects=[slug])
        assert sync(s, t, now=now, dry_run=True, projects=[slug]).changes == []
        # an award period ended (simulated by an older period tag): usage counter reset
        sh(
            "sacctmgr",
            "-i",
            "modify",
            "account",
            "where",
            f"name={slug}",
            "set",
            "Description=rechenwerk:periods=0",
        )
        rolled = sync(s, t, now=now, projects=[slug])
        assert [(c.action, c.current) for c in rolled.changes] == [("new_period", "0")]
        assert sync(s, t, now=now, dry_run=True, projects=[slug]).changes == []
    t.close()
    assoc = sh(
        "sacctmgr", "-n", "-P", "show", "assoc", f"accounts={slug}", "format=User,GrpTRESMins"
    )
    assert "|gres/gpu=6000" in assoc and f"{USER}|" in assoc


def test_jobs_run_to_completion_and_usage_is_settled_once(
    env: tuple[sessionmaker[Session], str, Path],
) -> None:
    factory, slug, data = env
    with factory() as s:
        sync(s, cli(), now=datetime.now(UTC), projects=[slug])
        s.commit()
    one = _submit(
        factory,
        data,
        slug,
        name="one-gpu",
        qos="high",
        command=["sleep", "1"],
        gpus=1,
        walltime=300,
    )
    multi = _submit(
        factory,
        data,
        slug,
        name="two-by-two",
        gpus=4,
        nodes=2,
        gpus_per_node=2,
        command=["bash", "-c", "echo $SLURMD_NODENAME $CUDA_VISIBLE_DEVICES"],
        walltime=300,
    )
    loop = _loop(factory, data)
    try:

        def done() -> bool:
            loop.cycle()
            return all(_job(factory, j).state == "completed" for j in (one, multi))

        wait_until(done, DEADLINE_S, "both jobs to complete", step=0.5)
    finally:
        loop.backend.close()
    one_h, multi_h = _job(factory, one).backend_handle, _job(factory, multi).backend_handle
    assert one_h and multi_h
    # a job submitted to Slurm directly under the project's account
    direct_window = [datetime.now(UTC)]
    direct = sh(
        "runuser",
        "-u",
        USER,
        "--",
        "sbatch",
        "--parsable",
        f"--account={slug}",
        "--gres=gpu:2",
        "--time=5",
        "--output=/dev/null",
        "--wrap",
        "sleep 2",
    ).strip()
    backend = SlurmBackend(cli())
    wait_until(
        lambda: backend.poll([direct])[direct].state.value == "completed", DEADLINE_S,
        "the direct job",
    )
    direct_window.append(datetime.now(UTC))
    # slurmctld hands finished jobs to slurmdbd asynchronously; a time-window query
    # (what the import uses) can lag the by-id query by a moment
    ids = {one_h, multi_h, direct}
    since = datetime.now(UTC) - timedelta(hours=1)
    wait_until(
        lambda: ids <= {j.job_id for j in cli().accounted_jobs(start=since) if j.end_time},
        DEADLINE_S,
        "slurmdbd to record the three jobs",
    )
    with factory() as s:
        report = import_finished_jobs(s, cli(), now=datetime.now(UTC), accounts=[slug])
        s.commit()
        again = import_finished_jobs(s, cli(), now=datetime.now(UTC), accounts=[slug])
        s.commit()
        recs = s.scalars(select(UsageRecord).order_by(UsageRecord.id)).all()
    assert report.settled_new == 1 and report.already_settled == 2, report.to_dict()
    assert again.settled_new == 0 and again.already_settled == 3
    assert len(recs) == 3
    by_job = {r.job_id: r for r in recs}
    assert by_job[one].gpus == 1 and by_job[multi].gpus == 4
    ext = [r for r in recs if r.external_id]
    assert len(ext) == 1 and ext[0].gpus == 2 and ext[0].source == "slurm"
    assert ext[0].external_id.endswith(f":{direct}")
    # its real run: at least its sleep, and within what the test saw (Slurm's times are
    # whole seconds), not a fixed bound a loaded machine can exceed
    ran_s = (ext[0].ended_at - ext[0].started_at).total_seconds()
    assert 1.0 <= ran_s <= (direct_window[1] - direct_window[0]).total_seconds() + 2
    j = _job(factory, multi)
    assert j.exit_code == 0 and j.started_at and j.ended_at


def test_over_limit_waits_in_slurm_with_reason(
    env: tuple[sessionmaker[Session], str, Path],
) -> None:
    factory, slug, data = env
    with factory() as s:
        sync(s, cli(), now=datetime.now(UTC), projects=[slug])
        s.commit()
    # by hand: only 5 GPU-minutes left in Slurm; the job needs 1 GPU x 10 min
    sh(
        "sacctmgr",
        "-i",
        "modify",
        "account",
        "where",
        f"name={slug}",
        "set",
        "GrpTRESMins=gres/gpu=5",
    )
    job_id = _submit(factory, data, slug, name="too-big", command=["true"], gpus=1, walltime=600)
    loop = _loop(factory, data)
    try:

        def waiting() -> bool:
            loop.cycle()
            return "AssocGrpGRESMinutes" in (_job(factory, job_id).reason or "")

        wait_until(waiting, DEADLINE_S, "Slurm's AssocGrpGRESMinutes reason in Rechenwerk",
                   step=0.5)
        job = _job(factory, job_id)
        assert job.state == "starting" and job.backend_handle
        assert "GPU-hour budget" in (job.reason or "")
    finally:
        loop.backend.close()
