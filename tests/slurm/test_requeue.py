"""Slurm requeues on the real daemons: Rechenwerk's preemption (``scontrol requeue``:
SIGTERM, then the job waits in Slurm again under the same id) through the scheduler
loop, on both transports, and typed GPU requests (``--gres=gpu:<type>:N``)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slurm_helpers import (
    SlurmAccount,
    active,
    cli,
    request,
    rest_jwt,
    sh,
    slurm_settings,
    wait_state,
    wait_until,
)
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from test_platform import USER, _job, _loop, _submit, env  # noqa: F401 - fixture re-export

from rechenwerk.accounting.models import UsageRecord
from rechenwerk.accounting.slurm_sync import sync
from rechenwerk.clock import WallClock
from rechenwerk.errors import BackendError, InvalidInput
from rechenwerk.execution.base import BackendJobState
from rechenwerk.execution.slurm import SlurmBackend, make_slurm_backend
from rechenwerk.execution.slurm.cli_transport import CliTransport
from rechenwerk.execution.slurm.types import SlurmJob
from rechenwerk.jobs.loop import SchedulerLoop
from rechenwerk.jobs.models import JobEvent
from rechenwerk.jobs.service import cancel
from rechenwerk.jobs.slurm_import import import_finished_jobs
from waiting import DEADLINE_S

pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm")]

# Attempt 1 checkpoints on SIGTERM and exits; a later attempt finishes at once.
CHECKPOINTING = (
    'echo "out $RECHENWERK_ATTEMPT"; echo "start $RECHENWERK_ATTEMPT" >> "$1"; '
    'if [ "$RECHENWERK_ATTEMPT" = 1 ]; then '
    'trap \'echo "term $RECHENWERK_ATTEMPT" >> "$1"; exit 0\' TERM; '
    "while :; do sleep 0.2; done; fi; "
    'echo "done $RECHENWERK_ATTEMPT" >> "$1"'
)


def _release(job_id: str) -> None:
    """A requeued job waits ~2 min (BeginTime); an operator may let it go at once.

    Not within the second of the requeue: slurmctld revokes the stopped run's credential
    with a one-second timestamp, and a new run launched in that same second is killed
    ("Killing non-startable batch JobId=N: Job credential revoked", exit 1), seen on a fast
    run of this test. So wait for the wall clock to pass that second first."""
    ends = [line.strip() for line in sh("sacct", "-j", job_id, "-D", "-X", "-n", "-P",
                                          "--format=End").splitlines()]
    known = [datetime.fromisoformat(e) for e in ends if e[:1].isdigit()]
    if known:  # slurmctld's times are local wall-clock seconds
        last = max(known)
        wait_until(lambda: datetime.now() >= last + timedelta(seconds=1.2), DEADLINE_S,
                   "the second of the requeue to pass", step=0.1)
    sh("scontrol", "update", f"jobid={job_id}", "starttime=now")


def _gres_request(job_id: str) -> str:
    # squeue's %b: "gres:gpu:a100:2" on 22.05, "gres/gpu:a100:2" (the TRES name) on 24.11
    return sh("squeue", "-h", f"--jobs={job_id}", "--format=%b").strip().replace(
        "gres/", "gres:", 1)


def test_preempt_sigterms_requeues_and_settles_each_run_once(
    env: tuple[sessionmaker[Session], str, Path],  # noqa: F811
) -> None:
    factory, slug, data = env
    with factory() as s:
        sync(s, cli(), now=datetime.now(UTC), projects=[slug])
        s.commit()
    marker = data / "progress"
    job_id = _submit(
        factory, data, slug, name="ckpt", gpus=1, walltime=300, checkpoint_interval="1m",
        command=["bash", "-c", CHECKPOINTING, "bash", str(marker)],
    )
    loop = _loop(factory, data)
    try:

        def state_is(want: str) -> bool:
            loop.cycle()
            return _job(factory, job_id).state == want

        wait_until(lambda: state_is("running"), DEADLINE_S, "the job to run", step=0.3)
        wait_until(lambda: marker.exists(), DEADLINE_S, "attempt 1 to start")
        first = _job(factory, job_id)
        handle = first.backend_handle
        assert handle and first.attempt == 1 and first.started_at
        loop.backend.preempt(handle)  # what the loop's apply step does for a preemption
        wait_until(lambda: state_is("starting"), DEADLINE_S, "Rechenwerk to see the requeue",
                   step=0.3)
        job = _job(factory, job_id)
        assert job.backend_handle == handle  # the same Slurm job, not a second submission
        assert job.attempt == 2 and job.started_at is None
        assert job.reason_code == "backend"
        assert job.reason and job.reason.startswith("requeued by slurm (requeued)"), job.reason

        def begin_time_shown() -> bool:
            # Slurm sets the pending reason (BeginTime) a moment after the requeue; a
            # loaded machine can show the requeue first. The prefix must stay.
            loop.cycle()
            reason = _job(factory, job_id).reason or ""
            assert reason.startswith("requeued by slurm (requeued)"), reason
            return "BeginTime" in reason

        wait_until(begin_time_shown, DEADLINE_S, "Slurm's BeginTime reason", step=0.3)
        job = _job(factory, job_id)
        assert marker.read_text().split("\n")[:2] == ["start 1", "term 1"]  # SIGTERM first
        with factory() as s:
            hops = [(e.from_state, e.to_state) for e in s.scalars(
                select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))]
            assert hops[-3:] == [("running", "preempted"), ("preempted", "pending"),
                                 ("pending", "starting")]
            recs = s.scalars(select(UsageRecord).where(UsageRecord.job_id == job_id)).all()
        assert [r.attempt for r in recs] == [1]
        rec = cli().accounted_jobs(job_ids=[handle])[0]
        killed = (*rec.earlier_runs, rec)[0]  # slurmdbd's record of the stopped run
        assert killed.state == "REQUEUED"
        # the run's start is Slurm's; the end is slurmdbd's when it had recorded the run
        # at that poll, otherwise when Slurm had requeued it (the job's new submit time)
        assert recs[0].started_at == first.started_at == killed.start_time
        assert killed.end_time is not None
        assert 0 <= (recs[0].ended_at - killed.end_time).total_seconds() <= 5
        for _ in range(3):  # duplicate polls change nothing
            loop.cycle()
        assert _job(factory, job_id).attempt == 2
        _release(handle)
        wait_until(lambda: state_is("completed"), DEADLINE_S, "attempt 2 to complete", step=0.5)
    finally:
        loop.backend.close()
    assert marker.read_text().split() == ["start", "1", "term", "1", "start", "2", "done", "2"]
    # the restarted run wrote to its own attempt's log directory
    assert (data / "logs" / str(job_id) / "2" / "stdout.log").read_text() == "out 2\n"
    assert (data / "logs" / str(job_id) / "1" / "stdout.log").read_text() == "out 1\n"
    wait_until(
        lambda: cli().accounted_jobs(job_ids=[handle])[0].state == "COMPLETED",
        DEADLINE_S, "slurmdbd to record the end",
    )
    final = cli().accounted_jobs(job_ids=[handle])[0]
    assert final.requeue_count == 1
    with factory() as s:
        for _ in range(2):
            import_finished_jobs(s, cli(), now=datetime.now(UTC), accounts=[slug])
            s.commit()
        recs = s.scalars(select(UsageRecord).where(UsageRecord.job_id == job_id)
                         .order_by(UsageRecord.attempt)).all()
        assert not s.scalars(select(UsageRecord).where(UsageRecord.external_id.is_not(None),
                                                       UsageRecord.project_id == recs[0].project_id)
                             ).all()  # not mistaken for a job submitted to Slurm directly
    assert [r.attempt for r in recs] == [1, 2]
    assert (recs[1].started_at, recs[1].ended_at) == (final.start_time, final.end_time)
    done = _job(factory, job_id)
    assert done.attained_gpu_s == pytest.approx(
        (recs[0].ended_at - recs[0].started_at).total_seconds())


@pytest.mark.parametrize("kind", ["cli", "rest-jwt"])
def test_backend_preempt_reports_the_requeue(kind: str, slurm_account: SlurmAccount) -> None:
    transport = cli() if kind == "cli" else rest_jwt()
    backend = SlurmBackend(transport)
    acc = slurm_account
    try:
        handle = backend.submit(request(acc.name, acc.user, acc.tmp, command=("sleep", "300"),
                                        job_id="201"))
        running = wait_state(backend, handle, states=frozenset({BackendJobState.RUNNING}))
        assert running.attempt == 1 and running.requeued_runs == ()
        assert running.started_at is not None
        # A job that cannot start while this one runs (afterok): preempting a pending job
        # is a no-op, not an error. (Not the first job right after its submission: Slurm
        # may start it at its next scheduling pass, within the preempt's state check, and
        # then it is requeued, rightly.)
        waiting = backend.submit(replace(
            request(acc.name, acc.user, acc.tmp, command=("true",), job_id="202"),
            after=(("after_ok", handle),)))
        wait_until(lambda: (backend.poll([waiting])[waiting].reason or "").startswith(
            "Dependency"), DEADLINE_S, "the second job to wait for the first", step=0.3)
        backend.preempt(waiting)
        held = backend.poll([waiting])[waiting]
        assert (held.state, held.attempt, held.requeued_runs) == (
            BackendJobState.PENDING, 1, ())
        backend.cancel(waiting)
        backend.preempt(handle)
        st = wait_state(backend, handle, states=frozenset({BackendJobState.PENDING}),
                        timeout=DEADLINE_S)

        def begin_time() -> bool:  # Slurm sets the reason a moment after the requeue
            now = backend.poll([handle]).get(handle)
            return now is not None and (now.reason or "").startswith("BeginTime")

        wait_until(begin_time, DEADLINE_S, "Slurm's BeginTime reason", step=0.3)
        st = backend.poll([handle])[handle]
        assert st.state is BackendJobState.PENDING
        assert st.attempt == 2 and st.reason and st.reason.startswith("BeginTime")
        [run] = st.requeued_runs
        assert run.attempt == 1 and run.ended_at is not None
        assert run.started_at in (None, running.started_at)
        wait_until(lambda: backend.poll([handle])[handle].requeued_runs[0].measured, DEADLINE_S,
                   "slurmdbd's record of the stopped run")
        again = backend.poll([handle])[handle].requeued_runs[0]
        assert again.started_at == running.started_at and again.reason == "REQUEUED"
        _release(handle)
        wait_state(backend, handle, states=frozenset({BackendJobState.RUNNING}))
        st = backend.poll([handle])[handle]
        assert st.attempt == 2 and len(st.requeued_runs) == 1
        backend.cancel(handle)
        assert wait_state(backend, handle).state is BackendJobState.CANCELLED
        backend.preempt(handle)  # a finished job is never requeued (it would run again)
        assert backend.poll([handle])[handle].state is BackendJobState.CANCELLED
    finally:
        backend.close()


def test_typed_gpu_request(slurm_account: SlurmAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    if "gpu:a100:" not in sh("sinfo", "-h", "-o", "%G"):
        pytest.skip("the dev cluster has no typed GPUs (SLURM_DEV_GPU_TYPE=a100 is the default)")
    monkeypatch.setenv("RECHENWERK_SLURM_GPU_TYPES", '{"A100-80GB": "a100", "H100": "h100"}')
    backend = make_slurm_backend(slurm_settings(executor="slurm"))
    assert backend.gpu_types == {"A100-80GB": "a100", "H100": "h100"}
    acc = slurm_account
    base = request(acc.name, acc.user, acc.tmp, command=("sleep", "2"), gpus_per_node=2,
                   job_id="301")
    try:
        handle = backend.submit(replace(base, gpu_type="A100-80GB"))
        assert _gres_request(handle) == "gres:gpu:a100:2"
        st = wait_state(backend, handle)
        assert st.state is BackendJobState.COMPLETED and st.allocated_gpus == 2
        alloc = json.loads(sh("sacct", "--json", "-X", f"--jobs={handle}"))["jobs"][0]
        names = {t["name"] for t in alloc["tres"]["allocated"] if t["type"] == "gres"}
        assert names == {"gpu", "gpu:a100"}, names
        # no gpu_type: untyped as before (any GPU)
        plain = backend.submit(replace(base, job_id="302", command=("true",)))
        assert _gres_request(plain) == "gres:gpu:2"
        # a mapped type the cluster does not have: Slurm refuses it with its reason
        with pytest.raises(BackendError) as exc:
            backend.submit(replace(base, job_id="303", gpu_type="H100"))
        assert "not available" in exc.value.message
        # a type the map does not name is refused before Slurm is asked
        with pytest.raises(InvalidInput) as bad:
            backend.submit(replace(base, job_id="304", gpu_type="L40S"))
        assert bad.value.field == "gpu_type" and "A100-80GB" in (bad.value.hint or "")
        assert wait_state(backend, plain).state is BackendJobState.COMPLETED
    finally:
        backend.close()
        active().run("scancel", f"--account={acc.name}")


# A job that runs until a file appears, then exits 0 (a trap keeps it alive on SIGTERM
# until then, too, so a requeued run stays COMPLETING for as long as a test wants).
UNTIL_FILE = 'trap "" TERM; while [ ! -e "$1" ]; do sleep 0.1; done; echo "ended $1"'


class _EndsAtTheRequeue:
    """A CLI transport whose job ends exactly between Rechenwerk's decision to preempt
    and slurmctld's handling of ``scontrol requeue``: the file the job waits for is made
    and slurmctld is waited for to record the end, right before the requeue command
    runs. (The check that the job runs, which the preempt used to make with ``squeue``
    first, would have seen it running.)"""

    def __init__(self, transport: CliTransport, job_id: str, go: Path) -> None:
        self.transport, self.job_id, self.go = transport, job_id, go
        self.inner_run = transport._run
        transport._run = self._run  # type: ignore[method-assign]

    def _run(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        if "requeue" in argv:
            self.go.touch()
            wait_until(lambda: _slurm_state(self.job_id) == "COMPLETED", DEADLINE_S,
                       "the job to end right before the requeue")
        return self.inner_run(argv, **kw)


def _slurm_state(job_id: str) -> str:
    out = sh("scontrol", "show", "job", job_id, check=False)
    return next((w.split("=", 1)[1] for w in out.split() if w.startswith("JobState=")), "")


def _restarts_of(job_id: str) -> int:
    out = sh("scontrol", "show", "job", job_id)
    return int(next(w.split("=", 1)[1] for w in out.split() if w.startswith("Restarts=")))


@pytest.mark.parametrize("kind", ["cli", "rest-jwt"])
def test_a_job_that_ends_at_the_requeue_is_not_run_again(
    kind: str, slurm_account: SlurmAccount,
) -> None:
    """The race between "the job runs" and ``scontrol requeue``: the job ends exactly
    in between (deterministically, see _EndsAtTheRequeue). Plain ``scontrol requeue``
    re-runs a finished job on 22.05 and 24.11 alike; ``requeue Incomplete`` leaves it."""
    acc = slurm_account
    go = acc.tmp / "go"
    transport = cli() if kind == "cli" else rest_jwt()
    backend = SlurmBackend(transport)
    try:
        handle = backend.submit(request(acc.name, acc.user, acc.tmp, job_id="401",
                                        command=("bash", "-c", UNTIL_FILE, "bash", str(go))))
        wait_state(backend, handle, states=frozenset({BackendJobState.RUNNING}))
        requeuer = transport if isinstance(transport, CliTransport) else None
        if requeuer is None:  # slurmrestd cannot requeue: the REST transport's CLI does
            transport.requeue("0")  # makes its CLI transport (job 0 does not exist)
            requeuer = transport._cli
        assert isinstance(requeuer, CliTransport)
        _EndsAtTheRequeue(requeuer, handle, go)
        backend.preempt(handle)
        assert _slurm_state(handle) == "COMPLETED" and _restarts_of(handle) == 0
        st = backend.poll([handle])[handle]
        assert (st.state, st.attempt, st.requeued_runs) == (BackendJobState.COMPLETED, 1, ())
    finally:
        backend.close()


def _cancel_as_owner(factory: sessionmaker[Session], job_id: int) -> None:
    from rechenwerk.access.models import User

    with factory() as s:
        user = s.scalars(select(User).where(User.username == USER)).one()
        cancel(s, user, job_id, clock=WallClock())
        s.commit()


@pytest.mark.parametrize("when", ["completing", "pending-again"])
def test_cancel_while_slurm_requeues_the_job(
    when: str, env: tuple[sessionmaker[Session], str, Path],  # noqa: F811
) -> None:
    """A user cancels while Slurm requeues the job: while its run is still stopping
    (COMPLETING; the job ignores SIGTERM until a file appears) or once it waits again
    (BeginTime). The job ends CANCELLED in Rechenwerk and in Slurm, the stopped run is
    settled once (and nothing for the run that never came), nothing is submitted again."""
    factory, slug, data = env
    with factory() as s:
        sync(s, cli(), now=datetime.now(UTC), projects=[slug])
        s.commit()
    go = data / "go"
    job_id = _submit(factory, data, slug, name="cq", gpus=1, walltime=300,
                     command=["bash", "-c", UNTIL_FILE, "bash", str(go)])
    loop = _loop(factory, data)
    try:

        def state_is(want: str) -> bool:
            loop.cycle()
            return _job(factory, job_id).state == want

        wait_until(lambda: state_is("running"), DEADLINE_S, "the job to run", step=0.3)
        handle = _job(factory, job_id).backend_handle
        assert handle
        loop.backend.preempt(handle)
        if when == "completing":
            wait_until(lambda: sh("squeue", "-h", f"--jobs={handle}", "-o", "%T").strip()
                       == "COMPLETING", DEADLINE_S, "Slurm to stop the run")
            _cancel_as_owner(factory, job_id)
            for _ in range(3):
                loop.cycle()  # the cancel goes to Slurm while the run is stopping
            assert _job(factory, job_id).state in ("running", "starting", "cancelled")
            go.touch()
        else:
            go.touch()
            wait_until(lambda: state_is("starting") and _job(factory, job_id).attempt == 2,
                       DEADLINE_S, "Rechenwerk to see the requeue", step=0.3)
            _cancel_as_owner(factory, job_id)
        wait_until(lambda: state_is("cancelled"), DEADLINE_S, "the job to end cancelled",
                   step=0.3)
        for _ in range(3):
            loop.cycle()
    finally:
        loop.backend.close()
    assert _slurm_state(handle) == "CANCELLED"
    job = _job(factory, job_id)
    assert job.backend_handle == handle
    # nothing else was submitted under the project's account
    ids = {line.split("|")[0] for line in sh("sacct", "-X", "-n", "-P", "-D", "--format=JobID",
                                              f"--accounts={slug}", "-S", "now-1hour")
           .split()}
    assert ids <= {handle}, ids

    def settled() -> list[UsageRecord]:
        with factory() as s:
            return list(s.scalars(select(UsageRecord).where(UsageRecord.job_id == job_id)
                                  .order_by(UsageRecord.attempt)))

    attempts = [r.attempt for r in settled()]
    # On a loaded machine Slurm may start the requeued run before the cancel reaches it
    # (seen once on 22.05): that run is real, charged once, and then cancelled.
    assert attempts in ([1], [1, 2]), attempts

    def stopped_run() -> SlurmJob | None:
        recs = cli().accounted_jobs(job_ids=[handle])
        runs = (*recs[0].earlier_runs, recs[0]) if recs else ()
        return runs[0] if runs and runs[0].state == "REQUEUED" else None

    # slurmdbd records the stopped run; the cancel of the waiting job it records as a
    # run from the cancel to the cancel, or (22.05, sometimes) not at all
    wait_until(lambda: stopped_run() is not None, DEADLINE_S, "slurmdbd's stopped run")
    with factory() as s:
        for _ in range(2):
            import_finished_jobs(s, cli(), now=datetime.now(UTC), accounts=[slug])
            s.commit()
    recs = settled()
    assert [r.attempt for r in recs] == attempts
    stopped = stopped_run()
    assert stopped is not None
    assert recs[0].started_at == stopped.start_time
    if attempts == [1, 2]:  # the second run is slurmdbd's latest record, with its start
        latest = cli().accounted_jobs(job_ids=[handle])[0]
        assert latest.start_time is not None and recs[1].started_at == latest.start_time


class _LaggingSlurmdbd:
    """The CLI transport, except that slurmdbd "has not recorded" the job's runs while
    ``lag`` is set (slurmdbd records asynchronously, and may be down): ``accounted_jobs``
    answers without them. Everything else is the real cluster."""

    def __init__(self, inner: CliTransport) -> None:
        self.inner, self.lag = inner, True

    def accounted_jobs(self, **kw: Any) -> list[SlurmJob]:
        return [] if self.lag else self.inner.accounted_jobs(**kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("evidence", ["poll", "import"])
def test_a_run_requeued_before_anyone_saw_it_is_charged_once(
    evidence: str, env: tuple[sessionmaker[Session], str, Path],  # noqa: F811
) -> None:
    """Slurm requeues a run before Rechenwerk ever saw it running, and slurmdbd has no
    record of it yet: nothing is known of its start, so nothing is charged at the
    requeue. It is charged from slurmdbd's record as soon as that appears: by the poll
    while the job is still live (``poll``), or by the accounting import after the job
    ended (``import``: slurmdbd "lags" until then Never twice."""
    factory, slug, data = env
    with factory() as s:
        sync(s, cli(), now=datetime.now(UTC), projects=[slug])
        s.commit()
    marker = data / "progress"
    job_id = _submit(factory, data, slug, name="unseen", gpus=1, walltime=300,
                     command=["bash", "-c", CHECKPOINTING, "bash", str(marker)])
    dbd = _LaggingSlurmdbd(cli())
    settings = slurm_settings(data_dir=data, executor="slurm", scheduler_interval_s=0.2)
    loop = SchedulerLoop(factory, SlurmBackend(dbd), settings=settings,  # type: ignore[arg-type]
                         clock=WallClock())
    try:
        wait_until(lambda: (loop.cycle(), _job(factory, job_id).backend_handle)[1] is not None,
                   DEADLINE_S, "the job to be submitted", step=0.3)
        handle = _job(factory, job_id).backend_handle
        assert handle
        # Slurm starts it and requeues it; the loop does not poll meanwhile
        wait_until(lambda: marker.exists(), DEADLINE_S, "attempt 1 to start")
        assert _job(factory, job_id).started_at is None  # Rechenwerk never saw it run
        loop.backend.preempt(handle)
        wait_until(lambda: sh("squeue", "-h", f"--jobs={handle}", "-o", "%T").strip()
                   == "PENDING", DEADLINE_S, "Slurm to requeue the job")

        def attempt_is(n: int) -> bool:
            loop.cycle()
            job = _job(factory, job_id)
            return job.attempt == n and job.state == "starting"

        wait_until(lambda: attempt_is(2), DEADLINE_S, "Rechenwerk to see the requeue", step=0.3)

        def settled() -> list[UsageRecord]:
            with factory() as s:
                return list(s.scalars(select(UsageRecord).where(UsageRecord.job_id == job_id)
                                      .order_by(UsageRecord.attempt)))

        for _ in range(3):
            loop.cycle()
        assert settled() == []  # no evidence of the run's start: nothing charged yet
        if evidence == "poll":
            dbd.lag = False  # slurmdbd catches up while the job waits again
            wait_until(lambda: (loop.cycle(), [r.attempt for r in settled()])[1] == [1],
                       DEADLINE_S, "the run to be settled from slurmdbd", step=0.5)
        _release(handle)
        if evidence == "poll":
            wait_until(lambda: (loop.cycle(), _job(factory, job_id).state)[1] == "completed",
                       DEADLINE_S, "attempt 2 to complete", step=0.5)
            assert [r.attempt for r in settled()] == [1, 2]
        else:  # the server is away until the job has ended: the import finds it
            wait_until(lambda: _slurm_state(handle) == "COMPLETED", DEADLINE_S,
                       "attempt 2 to complete")
            assert settled() == []
    finally:
        loop.backend.close()

    def in_the_window() -> list[SlurmJob]:
        # what the import asks: slurmdbd's time window (on 22.05 it answered a moment
        # later than the query by job id)
        return [j for j in cli().accounted_jobs(start=datetime.now(UTC) - timedelta(days=1))
                if j.job_id == handle and j.state == "COMPLETED"]

    wait_until(lambda: bool(in_the_window()), DEADLINE_S, "slurmdbd to record the end")
    stopped = in_the_window()[0].earlier_runs[0]
    with factory() as s:
        for _ in range(2):
            rep = import_finished_jobs(s, cli(), now=datetime.now(UTC), accounts=[slug])
            s.commit()
    recs = settled()
    assert [r.attempt for r in recs] == [1, 2], rep.to_dict()
    assert (recs[0].started_at, recs[0].ended_at) == (stopped.start_time, stopped.end_time)
    assert recs[0].source == "slurm"
    assert _job(factory, job_id).attained_gpu_s == pytest.approx(
        (recs[0].ended_at - recs[0].started_at).total_seconds())
