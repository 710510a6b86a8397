"""Job dependencies on the real Slurm daemons, through the scheduler loop: a train ->
evaluate pipeline where Slurm itself holds evaluate (``--dependency=afterok:<train>``,
reason Dependency) until train completed, and an after_not_ok branch that Rechenwerk
cancels in Slurm (``scancel``) once train completed, so it never runs."""

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
    rest_jwt,
    sh,
    slurm_settings,
    wait_until,
)
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from factories import make_award, make_project, make_user
from rechenwerk.access.models import User
from rechenwerk.accounting.slurm_sync import sync
from rechenwerk.clock import WallClock
from rechenwerk.execution.slurm import SlurmBackend
from rechenwerk.jobs.loop import SchedulerLoop
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.service import submit
from rechenwerk.jobs.specs import JobSpec
from waiting import DEADLINE_S

pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm")]
USER = "rwtest"


@pytest.fixture
def env(slurm_up: SlurmCluster, session_factory: sessionmaker[Session]
        ) -> Iterator[tuple[sessionmaker[Session], str, Path, Path]]:
    ensure_unix_user(USER)
    slug = f"rwdep{uuid.uuid4().hex[:10]}"
    data, work = Path(f"/tmp/{slug}-data"), Path(f"/tmp/{slug}-work")
    for d in (data, work):
        d.mkdir(mode=0o777)
        d.chmod(0o777)
    with session_factory() as s:
        user = make_user(s, username=USER)
        make_award(s, make_project(s, pi=user, slug=slug), gpu_hours=100.0,
                   starts_at=datetime.now(UTC) - timedelta(days=1))
        s.commit()
    try:
        yield session_factory, slug, data, work
    finally:
        active().run("scancel", f"--account={slug}")
        wait_until(
            lambda: not sh("squeue", "-h", f"--account={slug}", "-o", "%A", check=False).strip(),
            DEADLINE_S, "test jobs to leave the queue")
        active().run("sacctmgr", "-i", "delete", "account", slug)
        subprocess.run(["rm", "-rf", str(data), str(work)])


def _submit(factory: sessionmaker[Session], data: Path, slug: str, **spec: object) -> int:
    with factory() as s:
        user = s.scalars(select(User).where(User.username == USER)).one()
        job = submit(s, user, JobSpec.model_validate({"project": slug, "gpus": 1,
                                                       "walltime": 300, **spec}),
                     clock=WallClock(), settings=slurm_settings(data_dir=data, executor="slurm"))
        s.commit()
        return job.id


def _job(factory: sessionmaker[Session], job_id: int) -> Job:
    with factory() as s:
        job = s.get(Job, job_id)
        assert job is not None
        s.expunge(job)
        return job


@pytest.mark.parametrize("kind", ["cli", "rest-jwt"])
def test_train_evaluate_pipeline_on_slurm(
    env: tuple[sessionmaker[Session], str, Path, Path], kind: str
) -> None:
    factory, slug, data, work = env
    with factory() as s:
        sync(s, cli(), now=datetime.now(UTC), projects=[slug])
        s.commit()
    gate = work / "release"
    common = {"workdir": str(work)}
    train = _submit(factory, data, slug, name="train", **common, command=[
        "bash", "-c", f"while [ ! -e {gate} ]; do sleep 0.2; done; echo weights-7 > model.txt"])
    evaluate = _submit(factory, data, slug, name="evaluate", **common,
                       depends_on={"after_ok": [train]},
                       command=["bash", "-c", "echo evaluated $(cat model.txt)"])
    branch = _submit(factory, data, slug, name="on-failure", **common,
                     depends_on={"after_not_ok": [train]}, command=["echo", "train failed"])
    transport = cli() if kind == "cli" else rest_jwt()
    loop = SchedulerLoop(factory, SlurmBackend(transport),
                         settings=slurm_settings(data_dir=data, executor="slurm",
                                           scheduler_interval_s=0.2),
                         clock=WallClock())
    try:
        def handed_over() -> bool:
            loop.cycle()
            return all(_job(factory, j).backend_handle for j in (train, evaluate, branch))

        wait_until(handed_over, DEADLINE_S, "the three jobs to reach Slurm", step=0.3)
        train_id = _job(factory, train).backend_handle
        eval_id, branch_id = _job(factory, evaluate).backend_handle, \
            _job(factory, branch).backend_handle
        assert train_id and eval_id and branch_id
        # Slurm's own view of the pipeline: evaluate waits for train there.
        shown = sh("scontrol", "show", "job", eval_id)
        assert f"Dependency=afterok:{train_id}" in shown, shown
        assert f"Dependency=afternotok:{train_id}" in sh("scontrol", "show", "job", branch_id)

        def train_running_eval_held() -> bool:
            loop.cycle()
            return (_job(factory, train).state == "running" and
                    sh("squeue", "-h", "-j", eval_id, "-o", "%T %r").split()
                    == ["PENDING", "Dependency"]
                    and _job(factory, evaluate).reason_code == "dependency")

        wait_until(train_running_eval_held, DEADLINE_S, "train running, evaluate held",
                   step=0.3)
        held = _job(factory, evaluate)
        assert (held.state, held.reason_code) == ("starting", "dependency"), held.reason
        assert held.reason == "Dependency: waiting for a dependency"
        gate.touch()

        def pipeline_done() -> bool:
            loop.cycle()
            return (_job(factory, evaluate).state in ("completed", "failed", "cancelled")
                    and _job(factory, branch).state == "cancelled")

        wait_until(pipeline_done, DEADLINE_S, "evaluate to end and the branch cancelled",
                   step=0.3)
    finally:
        loop.backend.close()
    t, ev, br = _job(factory, train), _job(factory, evaluate), _job(factory, branch)
    assert t.state == "completed" and ev.state == "completed", (t.reason, ev.reason)
    assert (data / "logs" / str(evaluate) / "1" / "stdout.log").read_text().strip() == \
        "evaluated weights-7"
    assert t.ended_at is not None and ev.started_at is not None
    assert ev.started_at >= t.ended_at  # Slurm started evaluate only after train ended
    assert br.reason_code == "dependency_never_satisfied", br.reason
    assert br.reason == f"dependency never satisfied: job {train} ended as completed " \
        "(after_not_ok)"
    # It never ran: cancelled while pending, nothing written, no time used.
    out = data / "logs" / str(branch) / "1" / "stdout.log"
    assert not out.exists() or out.read_text() == ""
    acct = sh("sacct", "-X", "-n", "-P", "-j", branch_id, "-o", "State,Elapsed").split("|")
    assert acct[0].startswith("CANCELLED") and acct[1].strip() == "00:00:00", acct
