"""Faults against the real daemons: slurmctld stopped while jobs are submitted, and a
node set down under a running job (Slurm requeues it; Rechenwerk shows it waiting again
and settles the killed run)."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from slurm_helpers import active, cli, sh, wait_until
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from test_platform import _job, _loop, _submit, env  # noqa: F401 - fixture re-export

from rechenwerk.accounting.models import UsageRecord
from rechenwerk.accounting.slurm_sync import sync
from rechenwerk.errors import BackendUnavailable
from rechenwerk.execution.base import BackendJobState
from rechenwerk.execution.slurm import SlurmBackend
from rechenwerk.jobs.slurm_import import import_finished_jobs
from waiting import DEADLINE_S

# one xdist group: these tests share one cluster and some stop daemons
pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm")]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _stop_slurmctld() -> None:
    pid = int(active().ctld_pidfile.read_text().strip())
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not _alive(pid), DEADLINE_S, "slurmctld to stop")


def _slurm_dev_up() -> None:
    active().slurm_dev("up", timeout=120)


def test_controller_down_keeps_job_pending_with_reason_then_submits(
    env: tuple[sessionmaker[Session], str, Path],  # noqa: F811
) -> None:
    factory, slug, data = env
    with factory() as s:
        sync(s, cli(), now=datetime.now(UTC), projects=[slug])
        s.commit()
    loop = _loop(factory, data)
    # a job already running when the controller goes away keeps running on its node;
    # it runs until the test releases it after the outage (a fixed sleep could end
    # before the loop has seen it running on a loaded machine)
    released = data / "release-runner"
    runner = _submit(
        factory, data, slug, name="runs-through", gpus=1, walltime=300,
        command=["sh", "-c", f"while [ ! -e {released} ]; do sleep 0.2; done"],
    )

    def running() -> bool:
        loop.cycle()
        return _job(factory, runner).state == "running"

    wait_until(running, DEADLINE_S, "the first job to run", step=0.3)
    _stop_slurmctld()
    try:
        with pytest.raises(BackendUnavailable):
            cli(timeout_s=20).ping()
        job_id = _submit(
            factory, data, slug, name="during-outage", command=["true"], gpus=1, walltime=120
        )
        t0 = time.monotonic()
        loop.cycle()
        job = _job(factory, job_id)
        assert _job(factory, runner).state == "running"  # poll skipped, nothing lost
        assert job.state == "pending", job.state
        assert job.backend_handle is None
        assert "slurmctld unreachable" in (job.reason or ""), job.reason
        assert time.monotonic() - t0 < 60
    finally:
        _slurm_dev_up()
        released.touch()
    try:

        def done() -> bool:
            loop.cycle()
            return {_job(factory, j).state for j in (job_id, runner)} == {"completed"}

        wait_until(done, DEADLINE_S, "both jobs to complete after slurmctld is back", step=0.5)
    finally:
        loop.backend.close()


def test_node_down_under_running_job_requeues_and_settles_once(
    env: tuple[sessionmaker[Session], str, Path],  # noqa: F811
) -> None:
    factory, slug, data = env
    with factory() as s:
        sync(s, cli(), now=datetime.now(UTC), projects=[slug])
        s.commit()
    # The first run lasts until its node goes down (a fixed sleep could end first on a
    # loaded machine); the run Slurm requeues finishes quickly.
    ran = data / "node-fault-ran"
    job_id = _submit(
        factory, data, slug, name="node-fault", gpus=1, walltime=300,
        command=["sh", "-c", f"if [ -e {ran} ]; then sleep 4; else touch {ran}; sleep 600; fi"],
    )
    loop = _loop(factory, data)
    backend = SlurmBackend(cli())
    node = ""
    try:

        def running() -> bool:
            loop.cycle()
            return _job(factory, job_id).state == "running"

        wait_until(running, DEADLINE_S, "the job to run", step=0.3)
        handle = _job(factory, job_id).backend_handle
        assert handle
        node = backend.poll([handle])[handle].nodes[0]
        sh("scontrol", "update", f"nodename={node}", "state=down", "reason=rechenwerk-test")
        # Slurm kills the job on the lost node and requeues it (held ~2 min by BeginTime)
        wait_until(
            lambda: backend.poll([handle])[handle].state is BackendJobState.PENDING,
            DEADLINE_S,
            "Slurm to requeue the job",
        )
        live = {j.job_id: j for j in cli().live_jobs()}[handle]
        assert live.requeue_count >= 1
        seen_running = _job(factory, job_id)

        def waiting_again() -> bool:
            loop.cycle()
            return _job(factory, job_id).state == "starting"

        # Rechenwerk shows the job waiting again (no longer running), as attempt 2, with
        # why; the killed run is settled once (duplicate polls change nothing)
        wait_until(waiting_again, DEADLINE_S, "Rechenwerk to see Slurm's requeue", step=0.3)
        for _ in range(3):
            loop.cycle()
        requeued = _job(factory, job_id)
        assert requeued.attempt == 2 and requeued.backend_handle == handle
        assert (requeued.reason or "").startswith("requeued by slurm (")  # (node fail)
        with factory() as s:
            killed = s.scalars(select(UsageRecord).where(UsageRecord.job_id == job_id)).all()
        assert [r.attempt for r in killed] == [1]
        assert killed[0].started_at == seen_running.started_at
        # keep the lost node out (ReturnToService would bring a DOWN node straight back)
        sh("scontrol", "update", f"nodename={node}", "state=drain", "reason=rechenwerk-test")
        sh("scontrol", "update", f"jobid={handle}", "starttime=now")  # operator releases it

        def done() -> bool:
            loop.cycle()
            return _job(factory, job_id).state == "completed"

        wait_until(done, DEADLINE_S, "the requeued job to complete", step=0.5)
    finally:
        loop.backend.close()
        if node:
            active().run("scontrol", "update", f"nodename={node}", "state=resume")
    job = _job(factory, job_id)
    final = cli().accounted_jobs(job_ids=[handle])
    wait_until(
        lambda: bool(cli().accounted_jobs(job_ids=[handle])[0].end_time),
        DEADLINE_S,
        "slurmdbd to record the end",
    )
    final = cli().accounted_jobs(job_ids=[handle])
    assert final[0].state == "COMPLETED"
    assert job.started_at == final[0].start_time  # the run that completed
    with factory() as s:
        import_finished_jobs(s, cli(), now=datetime.now(UTC), accounts=[slug])
        import_finished_jobs(s, cli(), now=datetime.now(UTC), accounts=[slug])
        s.commit()
        recs = s.scalars(select(UsageRecord).where(UsageRecord.job_id == job_id)).all()
    assert sorted(r.attempt for r in recs) == [1, 2]  # each run settled once
    last = next(r for r in recs if r.attempt == 2)
    assert last.started_at == final[0].start_time and last.ended_at == final[0].end_time
