"""The scheduler loop against an in-memory backend (deterministic) and the real local
executor: persist-then-launch, revert on launch failure, reasons, preemption, drain,
cancel, reconcile after a restart."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from jobs_fake_backend import FakeBackend
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from factories import make_award, make_project, make_user
from rechenwerk.accounting.balance import project_balance
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.clock import FakeClock
from rechenwerk.config import Settings
from rechenwerk.execution.base import (
    BackendCapabilities,
    BackendJobState,
    BackendJobStatus,
    LaunchRequest,
)
from rechenwerk.execution.local import LocalExecutor
from rechenwerk.jobs import nodes as job_nodes
from rechenwerk.jobs import progress as job_progress
from rechenwerk.jobs import service
from rechenwerk.jobs import transitions as job_transitions
from rechenwerk.jobs.loop import SchedulerLoop
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.specs import parse_spec
from rechenwerk.store.session import session_scope
from waiting import wait_for


def _setup(session_factory: sessionmaker[Session], gpu_hours: float = 10_000.0
           ) -> tuple[int, str, int]:
    with session_scope(session_factory) as s:
        pi = make_user(s)
        op = make_user(s, operator=True)
        project = make_project(s, pi=pi)
        make_award(s, project, gpu_hours=gpu_hours)
        return pi.id, project.slug, op.id


def _submit(session_factory: sessionmaker[Session], user_id: int, clock: FakeClock,
            settings: Settings, **kw: object) -> int:
    from rechenwerk.access.models import User

    doc: dict[str, object] = {"name": "j", "project": kw.pop("project"), "command": ["true"],
                              "gpus": 8, "walltime": "1h"}
    doc.update(kw)
    with session_scope(session_factory) as s:
        user = s.get(User, user_id)
        assert user is not None
        return service.submit(s, user, parse_spec(doc), clock=clock, settings=settings).id


def _job(session_factory: sessionmaker[Session], job_id: int) -> Job:
    with session_scope(session_factory) as s:
        job = s.get(Job, job_id)
        assert job is not None
        s.expunge(job)
        return job


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", scheduler_policy="fifo",
                    local_cluster="2x8:A100-80GB")


def test_starts_what_fits_and_explains_the_rest(
    session_factory: sessionmaker[Session], clock: FakeClock, settings: Settings
) -> None:
    pi, slug, _ = _setup(session_factory)
    backend = FakeBackend()
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)
    a = _submit(session_factory, pi, clock, settings, project=slug, gpus=8)
    b = _submit(session_factory, pi, clock, settings, project=slug, gpus=8)
    c = _submit(session_factory, pi, clock, settings, project=slug, gpus=16)
    stats = loop.cycle()
    assert stats.started == 2 and stats.waiting == 1
    ja, jc = _job(session_factory, a), _job(session_factory, c)
    assert ja.state == "starting" and ja.attempt == 1 and ja.backend_handle == f"{a}.1"
    assert ja.placement is not None and len(ja.placement[0][1]) == 8
    assert jc.state == "pending" and jc.reason_code and jc.reason
    assert "16" in jc.reason  # e.g. "waiting for 16 GPUs (0 free)"
    req = backend.launched[0]
    assert req.placement is not None and req.log_dir.endswith(f"logs/{a}/1")
    # The backend reports a and b running, then a completes: c still waits for b.
    t = clock.now()
    backend.status[f"{a}.1"] = BackendJobStatus(f"{a}.1", BackendJobState.RUNNING, started_at=t)
    backend.status[f"{b}.1"] = BackendJobStatus(f"{b}.1", BackendJobState.RUNNING, started_at=t)
    loop.cycle()
    assert _job(session_factory, a).state == "running"
    clock.advance(1800)
    backend.status[f"{a}.1"] = BackendJobStatus(
        f"{a}.1", BackendJobState.COMPLETED, started_at=t, ended_at=clock.now(), exit_code=0)
    loop.cycle()
    assert _job(session_factory, a).state == "completed"
    assert _job(session_factory, c).state == "pending"
    with session_scope(session_factory) as s:
        rec = s.scalars(select(UsageRecord).where(UsageRecord.job_id == a)).one()
        assert rec.gpu_hours == pytest.approx(8 * 0.5)


def test_launch_failure_reverts_and_requeues_with_reason(
    session_factory: sessionmaker[Session], clock: FakeClock, settings: Settings
) -> None:
    pi, slug, _ = _setup(session_factory)
    backend = FakeBackend()
    backend.fail_next = "node01 is unreachable"
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)
    j = _submit(session_factory, pi, clock, settings, project=slug, gpus=8)
    stats = loop.cycle()
    assert stats.launch_failed == 1
    job = _job(session_factory, j)
    assert job.state == "pending" and job.reason_code == "launch_failed"
    assert job.reason == "launch failed: node01 is unreachable"
    assert job.placement is None and job.backend_handle is None
    loop.cycle()
    assert _job(session_factory, j).state == "starting"


def test_drained_node_gets_nothing_new(
    session_factory: sessionmaker[Session], clock: FakeClock, settings: Settings
) -> None:
    pi, slug, op_id = _setup(session_factory)
    backend = FakeBackend()
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)
    from rechenwerk.access.models import User

    with session_scope(session_factory) as s:
        op = s.get(User, op_id)
        assert op is not None
        view = job_nodes.set_drained(s, op, "node01", drained=True, reason="GPU 3 ECC errors",
                                   inventory=backend.nodes, now=clock.now())
        assert view.drained and view.free_gpus if False else view.drained
    ids = [_submit(session_factory, pi, clock, settings, project=slug, gpus=8) for _ in range(2)]
    loop.cycle()
    jobs = [_job(session_factory, i) for i in ids]
    assert [j.state for j in jobs] == ["starting", "pending"]
    assert jobs[0].placement is not None and jobs[0].placement[0][0] == "node02"
    with session_scope(session_factory) as s:
        nodes = {n.name: n for n in job_nodes.list_nodes(s, backend.nodes)}
        assert nodes["node01"].drained and nodes["node02"].used_gpus == 8


def test_cancel_of_running_job_reaches_backend(
    session_factory: sessionmaker[Session], clock: FakeClock, settings: Settings
) -> None:
    from rechenwerk.access.models import User

    pi, slug, _ = _setup(session_factory)
    backend = FakeBackend()
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)
    j = _submit(session_factory, pi, clock, settings, project=slug)
    loop.cycle()
    with session_scope(session_factory) as s:
        user = s.get(User, pi)
        assert user is not None
        service.cancel(s, user, j, clock=clock)
    loop.cycle()
    assert backend.cancelled == [f"{j}.1"]
    backend.status[f"{j}.1"] = BackendJobStatus(
        f"{j}.1", BackendJobState.CANCELLED, started_at=clock.now(), ended_at=clock.now())
    loop.cycle()
    assert _job(session_factory, j).state == "cancelled"
    assert backend.cancelled == [f"{j}.1"]


def test_reconcile_relaunches_unconfirmed_start_without_running_twice(
    session_factory: sessionmaker[Session], clock: FakeClock, settings: Settings
) -> None:
    pi, slug, _ = _setup(session_factory)
    backend = FakeBackend()
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)
    j = _submit(session_factory, pi, clock, settings, project=slug)
    loop.cycle()
    # Simulate a crash after the launch but before the handle was recorded.
    with session_scope(session_factory) as s:
        job = s.get(Job, j)
        assert job is not None
        job.backend_handle = None
    restarted = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)
    restarted.reconcile()
    assert len(backend.launched) == 1  # same attempt: the backend did not launch again
    assert _job(session_factory, j).backend_handle == f"{j}.1"


def test_unknown_handle_fails_job_on_reconcile(
    session_factory: sessionmaker[Session], clock: FakeClock, settings: Settings
) -> None:
    pi, slug, _ = _setup(session_factory)
    backend = FakeBackend()
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)
    j = _submit(session_factory, pi, clock, settings, project=slug)
    loop.cycle()
    SchedulerLoop(session_factory, FakeBackend(), settings=settings, clock=clock).reconcile()
    job = _job(session_factory, j)
    assert job.state == "failed" and job.reason_code == "lost"


def test_las_preempts_low_qos_job_and_requeues_it(
    session_factory: sessionmaker[Session], clock: FakeClock, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "var", scheduler_policy="las",
                        local_cluster="1x8:A100-80GB")
    pi, slug, _ = _setup(session_factory)
    backend = FakeBackend("1x8:A100-80GB")
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)
    low = _submit(session_factory, pi, clock, settings, project=slug, qos="low")
    loop.cycle()
    t = clock.now()
    backend.status[f"{low}.1"] = BackendJobStatus(f"{low}.1", BackendJobState.RUNNING,
                                                  started_at=t)
    loop.cycle()
    clock.advance(600)
    high = _submit(session_factory, pi, clock, settings, project=slug, qos="high")
    stats = loop.cycle()
    assert stats.preempted == 1 and backend.preempted == [f"{low}.1"]
    # The victim still holds its GPUs while it checkpoints: nothing starts on them yet.
    waiting = _job(session_factory, high)
    assert waiting.state == "pending" and waiting.reason_code == "preemption"
    backend.status[f"{low}.1"] = BackendJobStatus(
        f"{low}.1", BackendJobState.PREEMPTED, started_at=t, ended_at=clock.now())
    loop.cycle()
    job = _job(session_factory, low)
    assert job.state == "pending" and job.attempt == 1 and job.attained_gpu_s == 8 * 600
    assert _job(session_factory, high).state == "starting"


def test_real_local_executor_end_to_end(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """Wall clock + real processes: a job runs, ends, is settled from its real run time."""
    from rechenwerk.clock import WallClock

    settings = Settings(data_dir=tmp_path / "var", scheduler_policy="fifo",
                        local_cluster="1x4:A100-80GB", kill_grace_s=1.0)
    with session_scope(session_factory) as s:
        pi = make_user(s)
        project = make_project(s, pi=pi)
        now = WallClock().now()
        make_award(s, project, gpu_hours=100, starts_at=now - timedelta(days=1))
        pi_id, slug = pi.id, project.slug
    clock = WallClock()
    backend = LocalExecutor(settings.data_dir, cluster=settings.local_cluster, kill_grace_s=1.0)
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)  # type: ignore[arg-type]
    code = "import os,time; print('gpus', os.environ['CUDA_VISIBLE_DEVICES']); time.sleep(0.6)"
    j = _submit(session_factory, pi_id, clock, settings, project=slug, gpus=2,  # type: ignore[arg-type]
                command=[sys.executable, "-c", code])
    bad = _submit(session_factory, pi_id, clock, settings, project=slug, gpus=1,  # type: ignore[arg-type]
                  command=["definitely-not-installed-xyz"])
    before = clock.now()

    def both_ended() -> bool:
        loop.cycle()
        return {_job(session_factory, i).state for i in (j, bad)} <= {"completed", "failed"}

    wait_for(both_ended, "both jobs to end", step=0.1)
    after = clock.now()
    job, failed = _job(session_factory, j), _job(session_factory, bad)
    assert job.state == "completed", job.reason
    assert failed.state == "failed"
    assert failed.reason == "command not found: definitely-not-installed-xyz"
    out = settings.data_dir / "logs" / str(j) / "1" / "stdout.log"
    assert out.read_text().strip() == "gpus 0,1"
    assert job.started_at is not None and job.ended_at is not None
    run_s = (job.ended_at - job.started_at).total_seconds()
    # Its real run time: at least its sleep, and within what the test saw (not a fixed
    # bound a loaded machine can exceed, nor the 1 h walltime).
    assert 0.5 <= run_s <= (after - before).total_seconds()
    with session_scope(session_factory) as s:
        from rechenwerk.access.projects import get_project

        bal = project_balance(s, get_project(s, slug), clock.now())
        assert bal.committed_gpu_hours == pytest.approx(0.0)
        assert bal.settled_gpu_hours == pytest.approx(2 * run_s / 3600, rel=0.05, abs=1e-5)


class SelfSchedulingBackend(FakeBackend):
    """Like Slurm: queues and places jobs itself and reports its own pending reason."""

    name = "selfsched"
    capabilities = BackendCapabilities(schedules_itself=True, multi_node=True,
                                       graceful_preemption=True, imports_foreign_jobs=True)


def test_self_scheduling_backend_gets_jobs_at_once_and_its_reason_is_shown(
    session_factory: sessionmaker[Session], clock: FakeClock, settings: Settings
) -> None:
    pi, slug, _ = _setup(session_factory)
    backend = SelfSchedulingBackend()
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)
    ids = [_submit(session_factory, pi, clock, settings, project=slug, gpus=16)
           for _ in range(3)]
    stats = loop.cycle()
    assert stats.started == 3  # handed over without asking the core
    assert all(r.placement is None for r in backend.launched)
    for i in ids:
        h = f"{i}.1"
        backend.status[h] = BackendJobStatus(h, BackendJobState.PENDING, reason="Resources")
    loop.cycle()
    job = _job(session_factory, ids[2])
    assert job.state == "starting" and job.reason == "Resources"
    assert job.backend == "selfsched"


def test_unexpected_backend_exception_reverts_the_start(
    session_factory: sessionmaker[Session], clock: FakeClock, settings: Settings
) -> None:
    pi, slug, _ = _setup(session_factory)
    backend = FakeBackend()

    def broken(request: LaunchRequest) -> str:
        raise RuntimeError("driver exploded")

    backend.submit = broken  # type: ignore[method-assign]
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)
    j = _submit(session_factory, pi, clock, settings, project=slug)
    loop.cycle()
    job = _job(session_factory, j)
    assert job.state == "pending" and job.reason == "launch failed: RuntimeError: driver exploded"


def test_one_unappliable_report_does_not_block_the_others(
    session_factory: sessionmaker[Session], clock: FakeClock, settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pi, slug, _ = _setup(session_factory)
    backend = FakeBackend()
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)
    a = _submit(session_factory, pi, clock, settings, project=slug)
    b = _submit(session_factory, pi, clock, settings, project=slug)
    loop.cycle()
    for j in (a, b):
        backend.status[f"{j}.1"] = BackendJobStatus(f"{j}.1", BackendJobState.RUNNING,
                                                    started_at=clock.now())
    real = job_progress.apply_backend_status

    def flaky(session: Session, job: Job, status: BackendJobStatus, **kw: object) -> bool:
        if job.id == a:
            raise RuntimeError("corrupt report")
        return real(session, job, status, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr("rechenwerk.jobs.loop.apply_backend_status", flaky)
    loop.cycle()
    assert _job(session_factory, a).state == "starting"
    assert _job(session_factory, b).state == "running"


def test_only_one_loop_per_database_is_active(
    session_factory: sessionmaker[Session], clock: FakeClock, settings: Settings
) -> None:
    first = SchedulerLoop(session_factory, FakeBackend(), settings=settings, clock=clock)
    second = SchedulerLoop(session_factory, FakeBackend(), settings=settings, clock=clock)
    try:
        assert first.leadership.acquire()
        assert first.leadership.acquire()  # re-entrant for its holder
        assert not second.leadership.acquire()
        first.leadership.release()
        assert second.leadership.acquire()
        assert not first.leadership.acquire()
    finally:
        first.leadership.release()
        second.leadership.release()


def test_standby_loop_does_not_schedule(
    session_factory: sessionmaker[Session], clock: FakeClock, settings: Settings
) -> None:
    pi, slug, _ = _setup(session_factory)
    leader_backend, standby_backend = FakeBackend(), FakeBackend()
    leader = SchedulerLoop(session_factory, leader_backend, settings=settings, clock=clock)
    standby = SchedulerLoop(session_factory, standby_backend, settings=settings, clock=clock)
    leader.start()  # takes the leadership synchronously, before its thread runs
    standby.start()
    try:
        assert leader.leadership.held and not standby.leadership.held
        j = _submit(session_factory, pi, clock, settings, project=slug)
        leader.wake()
        standby.wake()
        # Wait for the launch itself, not the state: the loop persists "starting" first
        # and calls the backend right after, so a busy machine can show the state change
        # before the launch.
        wait_for(lambda: leader_backend.launched or standby_backend.launched,
                 "a loop to launch the job")
        assert _job(session_factory, j).backend == "fake"
        assert len(leader_backend.launched) == 1 and standby_backend.launched == []
    finally:
        leader.stop()
        standby.stop()


def test_cancel_between_placement_and_launch_never_starts_the_job(
    session_factory: sessionmaker[Session], clock: FakeClock, settings: Settings
) -> None:
    from rechenwerk.access.models import User
    from rechenwerk.jobs.states import JobState

    pi, slug, _ = _setup(session_factory)
    backend = FakeBackend()
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)
    j = _submit(session_factory, pi, clock, settings, project=slug)
    with session_scope(session_factory) as s:  # placed, as the loop does before launching
        job = s.get(Job, j)
        assert job is not None
        job_transitions.transition(s, job, JobState.STARTING, now=clock.now(),
                           values={"attempt": 1, "placement": [["node01", [0]]]})
        user = s.get(User, pi)
        assert user is not None
        service.cancel(s, user, j, clock=clock)
    loop.reconcile()  # launches unconfirmed starts
    assert backend.launched == []
    assert _job(session_factory, j).state == "cancelled"


def test_a_cycle_times_each_named_phase_and_logs_them(
    session_factory: sessionmaker[Session], clock: FakeClock, settings: Settings,
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A slow cycle is logged at INFO however quiet: no machine is that slow here.
    monkeypatch.setattr("rechenwerk.jobs.loop.SLOW_CYCLE_S", float("inf"))
    pi, slug, _ = _setup(session_factory)
    loop = SchedulerLoop(session_factory, FakeBackend(), settings=settings, clock=clock)
    for _ in range(3):
        _submit(session_factory, pi, clock, settings, project=slug)
    with caplog.at_level("INFO", logger="rechenwerk.scheduler"):
        stats = loop.cycle()
    assert stats.started == 2 and stats.waiting == 1
    phases = ("poll", "forward_cancels", "snapshot", "decide", "apply", "reasons")
    for phase in phases:
        assert getattr(stats, phase + "_s") > 0, phase
    assert stats.hand_over_s == 0  # only for backends that schedule themselves
    assert stats.total_s >= sum(getattr(stats, p + "_s") for p in phases)
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("cycle "))
    assert all(f"{p}=" in line for p in phases)
    assert "started=2" in line and "waiting=1" in line
    caplog.clear()
    with caplog.at_level("INFO", logger="rechenwerk.scheduler"):
        quiet = loop.cycle()  # nothing changed: logged at DEBUG only
    assert quiet.started == 0
    assert not [r for r in caplog.records if r.getMessage().startswith("cycle ")]
