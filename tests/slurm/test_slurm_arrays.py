"""Job arrays on the real Slurm daemons: the tasks of one Rechenwerk array become ONE
``sbatch --array`` (with its %N limit); each task runs as its own Rechenwerk job, sees
its index (SLURM_ARRAY_TASK_ID and RECHENWERK_ARRAY_TASK_ID) and is tracked by its
handle ``<slurm id>_<index>``; one task can be cancelled alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from slurm_helpers import (
    SlurmAccount,
    SlurmCluster,
    active,
    cli,
    request,
    rest_jwt,
    sh,
    slurm_settings,
    wait_state,
)

from rechenwerk.execution.base import ArrayTask, BackendJobState
from rechenwerk.execution.slurm import SlurmBackend
from waiting import wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm")]


@pytest.fixture(params=["cli", "rest-jwt"])
def backend(request: pytest.FixtureRequest, slurm_up: SlurmCluster) -> Iterator[SlurmBackend]:
    b = SlurmBackend(cli() if request.param == "cli"
                     else rest_jwt())
    yield b
    b.close()


def _tasks(acc: SlurmAccount, indices: list[int], limit: int | None,
           command: tuple[str, ...]) -> list[object]:
    base = request(acc.name, acc.user, acc.tmp, command=command, job_id="0")
    out = []
    for n, index in enumerate(indices):
        job_id = str(300 + n)
        out.append(replace(base, job_id=job_id, log_dir=str(acc.tmp / f"logs-{job_id}"),
                           array=ArrayTask("300", index, len(indices), min(indices),
                                           max(indices), limit)))
    return out


def test_an_array_runs_as_one_slurm_array_and_each_task_sees_its_index(
        backend: SlurmBackend, slurm_account: SlurmAccount) -> None:
    acc = slurm_account
    reqs = _tasks(acc, [0, 2, 5], 2, ("bash", "-c",
        'echo "$RECHENWERK_JOB_ID $RECHENWERK_ARRAY_JOB_ID $RECHENWERK_ARRAY_TASK_ID '
        '$SLURM_ARRAY_TASK_ID $RECHENWERK_ARRAY_TASK_COUNT $RECHENWERK_ARRAY_TASK_MAX"'))
    handles = backend.submit_array(reqs)  # type: ignore[arg-type]
    assert set(handles) == {"300", "301", "302"}
    slurm_ids = {h.split("_")[0] for h in handles.values()}
    assert len(slurm_ids) == 1  # ONE sbatch --array
    [array_id] = slurm_ids
    assert [h.split("_")[1] for h in handles.values()] == ["0", "2", "5"]
    for job_id, handle in handles.items():
        st = wait_state(backend, handle)
        assert st.state is BackendJobState.COMPLETED, st
        assert st.exit_code == 0 and st.account == acc.name
        index = handle.split("_")[1]
        out = (acc.tmp / f"logs-{job_id}" / "stdout.log").read_text().split()
        assert out == [job_id, "300", index, index, "3", "5"]
    # sacct knows them as tasks of one array, with the limit honoured by Slurm (slurmdbd
    # records them a moment after they end: wait for its records, not for a time).
    want = [f"{array_id}_0", f"{array_id}_2", f"{array_id}_5"]

    def recorded() -> list[str] | None:
        acct = sh("sacct", "-X", "-n", "-P", f"--jobs={array_id}", "--format=JobID,State")
        got = sorted(line.split("|")[0] for line in acct.split())
        return got if got == want else None

    assert wait_for(recorded, "slurmdbd's records of the three tasks") == want


def test_one_task_cancelled_alone_and_the_limit_holds_the_others(
        backend: SlurmBackend, slurm_account: SlurmAccount) -> None:
    acc = slurm_account
    reqs = _tasks(acc, [0, 1, 2], 1, ("sleep", "30"))
    handles = list(backend.submit_array(reqs).values())  # type: ignore[arg-type]
    first = wait_state(backend, handles[0], terminal=False,
                       states=frozenset({"running"}))
    assert first.state is BackendJobState.RUNNING
    waiting = backend.poll(handles[1:])
    for h in handles[1:]:  # %1: held by Slurm while task 0 runs
        assert waiting[h].state is BackendJobState.PENDING, waiting[h]
    backend.cancel(handles[2])  # the last task only
    st = wait_state(backend, handles[2])
    assert st.state is BackendJobState.CANCELLED
    assert backend.poll([handles[0]])[handles[0]].state is BackendJobState.RUNNING
    backend.cancel(handles[0])
    backend.cancel(handles[1])
    for h in handles[:2]:
        assert wait_state(backend, h).state is BackendJobState.CANCELLED


# --------------------------------------------------------------------------- the platform

USER = "rwtest"


def test_a_submitted_array_runs_as_one_slurm_array_through_the_scheduler_loop(
        slurm_up: SlurmCluster, session_factory: object) -> None:
    import subprocess
    import uuid
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from slurm_helpers import ensure_unix_user, wait_until
    from sqlalchemy import select
    from sqlalchemy.orm import Session, sessionmaker

    from factories import make_award, make_project, make_user
    from rechenwerk.access.models import User
    from rechenwerk.accounting.models import UsageRecord
    from rechenwerk.accounting.slurm_sync import sync
    from rechenwerk.clock import WallClock
    from rechenwerk.jobs.loop import SchedulerLoop
    from rechenwerk.jobs.models import Job
    from rechenwerk.jobs.service import submit_job
    from rechenwerk.jobs.specs import parse_spec
    from waiting import DEADLINE_S

    assert isinstance(session_factory, sessionmaker)
    factory: sessionmaker[Session] = session_factory
    ensure_unix_user(USER)
    slug = f"rwt{uuid.uuid4().hex[:10]}"
    data = Path(f"/tmp/{slug}-data")
    data.mkdir(mode=0o777)
    data.chmod(0o777)
    settings = slurm_settings(data_dir=data, executor="slurm", scheduler_interval_s=0.2)
    with factory() as s:
        user = make_user(s, username=USER)
        make_award(s, make_project(s, pi=user, slug=slug), gpu_hours=100.0,
                   starts_at=datetime.now(UTC) - timedelta(days=1))
        s.commit()
    loop = SchedulerLoop(factory, SlurmBackend(cli()), settings=settings,
                         clock=WallClock())
    try:
        with factory() as s:
            sync(s, cli(), now=datetime.now(UTC), projects=[slug])
            u = s.scalars(select(User).where(User.username == USER)).one()
            head = submit_job(s, u, parse_spec({
                "name": "sweep", "project": slug, "gpus": 1, "walltime": 300,
                "array": "1-3%2", "command": ["bash", "-c",
                    'echo "$SLURM_ARRAY_TASK_ID $RECHENWERK_ARRAY_TASK_ID"']}),
                clock=WallClock(), settings=settings).job.id
            s.commit()

        def tasks() -> list[Job]:
            with factory() as s:
                rows = list(s.scalars(select(Job).where(Job.array_job_id == head)
                                      .order_by(Job.array_task_id)))
                for r in rows:
                    s.expunge(r)
                return rows

        def done() -> bool:
            loop.cycle()
            return all(t.state == "completed" for t in tasks())

        wait_until(done, DEADLINE_S, "every task to complete", step=0.5)
        rows = tasks()
        handles = [t.backend_handle or "" for t in rows]
        assert len({h.split("_")[0] for h in handles}) == 1  # one Slurm array
        assert [h.split("_")[1] for h in handles] == ["1", "2", "3"]
        for t in rows:
            out = (data / "logs" / str(t.id) / "1" / "stdout.log").read_text().split()
            assert out == [str(t.array_task_id)] * 2
        with factory() as s:  # each task settled once, as its own job
            settled = s.scalars(select(UsageRecord.job_id).where(
                UsageRecord.job_id.in_([t.id for t in rows]))).all()
        assert sorted(settled) == sorted(t.id for t in rows)
    finally:
        loop.backend.close()
        active().run("scancel", f"--account={slug}")
        wait_until(lambda: not sh("squeue", "-h", f"--account={slug}", "-o", "%A",
                                  check=False).strip(), DEADLINE_S, "jobs to leave")
        active().run("sacctmgr", "-i", "delete", "account", slug)
        subprocess.run(["rm", "-rf", str(data)])
