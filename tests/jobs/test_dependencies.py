"""Job dependencies (docs/jobs.md "Dependencies"): the spec field, the submission checks
(existence, visibility, never-satisfiable, bound, self/forward reference, one
transaction), the committed GPU-hours of a waiting dependent job, and the scheduler loop's
``dependencies`` phase with an in-memory backend: held back with reason ``dependency``,
released when met, cancelled (down the chain) when it can never be met, or left waiting
with kill_invalid_dependency off; and on a self-scheduling backend, handed over with the
dependency on the backend's job."""

from __future__ import annotations

from pathlib import Path

import pytest
from jobs_fake_backend import FakeBackend
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from factories import make_award, make_project, make_user
from rechenwerk.access.models import User
from rechenwerk.accounting.balance import project_balance
from rechenwerk.clock import FakeClock
from rechenwerk.config import Settings
from rechenwerk.errors import InvalidInput, NotFound
from rechenwerk.execution.base import BackendCapabilities, BackendJobState, BackendJobStatus
from rechenwerk.execution.slurm.script import dependency_expression
from rechenwerk.jobs import service
from rechenwerk.jobs.dependencies import (
    REASON_NEVER,
    REASON_WAITING,
    dependencies_of,
    dependents_of,
    outcome,
)
from rechenwerk.jobs.loop import SchedulerLoop
from rechenwerk.jobs.models import Job, JobDependency
from rechenwerk.jobs.specs import MAX_DEPENDENCIES, parse_spec
from rechenwerk.store.session import session_scope

BASE = {"name": "step", "command": ["true"], "gpus": 8, "walltime": "1h"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", scheduler_policy="fifo",
                    local_cluster="2x8:A100-80GB")


def _world(session_factory: sessionmaker[Session]) -> dict[str, int | str]:
    with session_scope(session_factory) as s:
        pi = make_user(s)
        other = make_user(s)
        project = make_project(s, pi=pi)
        hidden = make_project(s, pi=other)
        make_award(s, project, gpu_hours=10_000.0)
        make_award(s, hidden, gpu_hours=10_000.0)
        return {"pi": pi.id, "other": other.id, "slug": project.slug, "hidden": hidden.slug}


def _submit(session_factory: sessionmaker[Session], user_id: int | str, clock: FakeClock,
            settings: Settings, **kw: object) -> int:
    with session_scope(session_factory) as s:
        user = s.get(User, user_id)
        assert user is not None
        return service.submit(s, user, parse_spec({**BASE, **kw}), clock=clock,
                              settings=settings).id


def _job(session_factory: sessionmaker[Session], job_id: int) -> Job:
    with session_scope(session_factory) as s:
        job = s.get(Job, job_id)
        assert job is not None
        s.expunge(job)
        return job


def _end(backend: FakeBackend, job_id: int, state: BackendJobState, clock: FakeClock,
         exit_code: int) -> None:
    handle = f"{job_id}.1"
    backend.status[handle] = BackendJobStatus(handle, state, started_at=clock.now(),
                                              ended_at=clock.now(), exit_code=exit_code)


# --------------------------------------------------------------------------- spec


def test_spec_field_accepts_lists_single_ids_and_refuses_bad_input() -> None:
    spec = parse_spec({**BASE, "project": "p",
                       "depends_on": {"after_ok": [3, "4", 3], "after_not_ok": 5}})
    assert spec.depends_on is not None
    assert spec.depends_on.items() == [("after_ok", 3), ("after_ok", 4), ("after_not_ok", 5)]
    assert spec.to_document()["depends_on"]["after_ok"] == [3, 4]
    for bad, words in [({"after_ok": [True]}, "not a job id"),
                       ({"after_ok": [0]}, "not a job id"),
                       ({"after_ok": ["x"]}, "not a job id"),
                       ({"after_ok": [2**63]}, "not a job id"),
                       ({"after_ok": {"a": 1}}, "list of job ids"),
                       ({"afterok": [1]}, "not a known field"),
                       ({}, "names no job"),
                       ({"after_any": list(range(1, MAX_DEPENDENCIES + 2))}, "at most")]:
        with pytest.raises(InvalidInput) as err:
            parse_spec({**BASE, "project": "p", "depends_on": bad})
        assert words in err.value.message, (bad, err.value.message)
        assert (err.value.field or "").startswith("depends_on")


def test_outcome_follows_slurm_semantics() -> None:
    assert outcome("after_ok", "running") == "wait"
    assert outcome("after_ok", "preempted") == "wait"  # requeued, not ended
    assert outcome("after_ok", "completed") == "met"
    for state in ("failed", "cancelled", "timeout"):
        assert outcome("after_ok", state) == "never"
        assert outcome("after_not_ok", state) == "met"
        assert outcome("after_any", state) == "met"
    assert outcome("after_not_ok", "completed") == "never"
    assert outcome("after_any", "completed") == "met"


def test_slurm_dependency_expression() -> None:
    assert dependency_expression(()) is None
    assert dependency_expression((("after_ok", "12"), ("after_ok", "13"),
                                  ("after_not_ok", "14"))) == "afterok:12:13,afternotok:14"
    with pytest.raises(InvalidInput):
        dependency_expression((("after_ok", "abc"),))
    with pytest.raises(InvalidInput):
        dependency_expression((("before", "12"),))


# --------------------------------------------------------------------------- submission


def test_submission_refuses_missing_hidden_forward_and_ended_references(
    session_factory: sessionmaker[Session], clock: FakeClock, settings: Settings
) -> None:
    w = _world(session_factory)
    hidden_job = _submit(session_factory, w["other"], clock, settings, project=w["hidden"])
    train = _submit(session_factory, w["pi"], clock, settings, project=w["slug"])
    missing = hidden_job + 1000
    forward = train + 1  # the id the next job will get: itself

    errors: dict[str, NotFound] = {}
    for label, ref in (("hidden", hidden_job), ("missing", missing), ("forward", forward)):
        with pytest.raises(NotFound) as err:
            _submit(session_factory, w["pi"], clock, settings, project=w["slug"],
                    depends_on={"after_any": [train], "after_ok": [ref]})
        errors[label] = err.value
    # The hidden job is refused exactly like a missing one: nothing tells it exists.
    assert errors["hidden"].message == f"job {hidden_job} not found"
    assert errors["missing"].message == f"job {missing} not found"
    assert errors["forward"].message == f"job {forward} not found"
    assert {e.field for e in errors.values()} == {"depends_on.after_ok[0]"}
    assert errors["hidden"].hint == errors["missing"].hint

    with session_scope(session_factory) as s:  # nothing half-written
        assert s.scalar(select(func.count()).select_from(Job)) == 2
        assert s.scalar(select(func.count()).select_from(JobDependency)) == 0

    # A job that already failed can never satisfy after_ok (but does after_not_ok).
    with session_scope(session_factory) as s:
        s.get(Job, train).state = "failed"  # type: ignore[union-attr]
    with pytest.raises(InvalidInput) as bad:
        _submit(session_factory, w["pi"], clock, settings, project=w["slug"],
                depends_on={"after_ok": [train]})
    assert "can never be met" in bad.value.message
    assert bad.value.field == "depends_on.after_ok[0]"
    ok = _submit(session_factory, w["pi"], clock, settings, project=w["slug"],
                 depends_on={"after_not_ok": [train]})
    # Already met at submission: the job only waits for the scheduler, not "dependency".
    assert (_job(session_factory, ok).state, _job(session_factory, ok).reason_code) == (
        "pending", "queued")


def test_dependent_job_commits_its_gpu_hours_and_shows_its_dependencies(
    session_factory: sessionmaker[Session], clock: FakeClock, settings: Settings
) -> None:
    w = _world(session_factory)
    train = _submit(session_factory, w["pi"], clock, settings, project=w["slug"])
    evaluate = _submit(session_factory, w["pi"], clock, settings, project=w["slug"],
                       gpus=4, walltime="2h", depends_on={"after_ok": [train]})
    job = _job(session_factory, evaluate)
    assert (job.state, job.reason_code) == ("pending", REASON_WAITING)
    assert job.reason == f"waiting for job {train} (after_ok)"
    with session_scope(session_factory) as s:
        project = service.get_project(s, str(w["slug"]))
        balance = project_balance(s, project, clock.now())
        # 8 GPUs x 1 h (train) + 4 GPUs x 2 h (the waiting evaluate job)
        assert balance.committed_gpu_hours == pytest.approx(16.0)
        pi = s.get(User, w["pi"])
        other = s.get(User, w["other"])
        assert pi is not None and other is not None
        assert [(d.kind, d.job_id, d.state) for d in dependencies_of(s, pi, evaluate)] == [
            ("after_ok", train, "pending")]
        assert dependents_of(s, pi, train) == [evaluate]
        # Someone outside the project sees neither the state nor the dependents.
        assert dependencies_of(s, other, evaluate)[0].state is None
        assert dependents_of(s, other, train) == []


# --------------------------------------------------------------------------- loop


def test_pipeline_waits_then_runs_and_the_not_ok_branch_is_cancelled_down_the_chain(
    session_factory: sessionmaker[Session], clock: FakeClock, settings: Settings
) -> None:
    w = _world(session_factory)
    backend = FakeBackend()
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)
    train = _submit(session_factory, w["pi"], clock, settings, project=w["slug"])
    evaluate = _submit(session_factory, w["pi"], clock, settings, project=w["slug"],
                       depends_on={"after_ok": [train]})
    rescue = _submit(session_factory, w["pi"], clock, settings, project=w["slug"],
                     depends_on={"after_not_ok": [train]})
    after_rescue = _submit(session_factory, w["pi"], clock, settings, project=w["slug"],
                           depends_on={"after_ok": [rescue]})
    loop.cycle()
    # 16 GPUs free: only train starts; the others are never offered to the core.
    assert [r.job_id for r in backend.launched] == [str(train)]
    for jid in (evaluate, rescue, after_rescue):
        job = _job(session_factory, jid)
        assert (job.state, job.reason_code) == ("pending", REASON_WAITING), jid
    assert _job(session_factory, rescue).reason == f"waiting for job {train} (after_not_ok)"
    loop.cycle()
    assert len(backend.launched) == 1

    _end(backend, train, BackendJobState.COMPLETED, clock, 0)
    stats = loop.cycle()
    assert _job(session_factory, train).state == "completed"
    assert [r.job_id for r in backend.launched] == [str(train), str(evaluate)]
    assert stats.dependency_cancelled == 2  # rescue, and after_rescue in the same cycle
    for jid in (rescue, after_rescue):
        job = _job(session_factory, jid)
        assert (job.state, job.reason_code) == ("cancelled", REASON_NEVER), jid
        assert job.reason is not None and job.reason.startswith("dependency never satisfied")
    assert _job(session_factory, rescue).reason == (
        f"dependency never satisfied: job {train} ended as completed (after_not_ok)")
    assert _job(session_factory, after_rescue).reason == (
        f"dependency never satisfied: job {rescue} ended as cancelled (after_ok)")
    # evaluate runs, and its reason is no longer the dependency's.
    assert _job(session_factory, evaluate).state == "starting"


def test_after_any_runs_after_a_cancelled_job_and_user_cancel_propagates(
    session_factory: sessionmaker[Session], clock: FakeClock, settings: Settings
) -> None:
    w = _world(session_factory)
    backend = FakeBackend()
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)
    blocker = _submit(session_factory, w["pi"], clock, settings, project=w["slug"], gpus=16)
    first = _submit(session_factory, w["pi"], clock, settings, project=w["slug"])
    ok_chain = _submit(session_factory, w["pi"], clock, settings, project=w["slug"],
                       depends_on={"after_ok": [first]})
    ok_chain2 = _submit(session_factory, w["pi"], clock, settings, project=w["slug"],
                        depends_on={"after_ok": [ok_chain]})
    cleanup = _submit(session_factory, w["pi"], clock, settings, project=w["slug"],
                      depends_on={"after_any": [first]})
    loop.cycle()
    assert [r.job_id for r in backend.launched] == [str(blocker)]
    with session_scope(session_factory) as s:
        pi = s.get(User, w["pi"])
        assert pi is not None
        service.cancel(s, pi, first, clock=clock)  # pending: cancelled at once
    loop.cycle()
    assert _job(session_factory, ok_chain).state == "cancelled"
    assert _job(session_factory, ok_chain2).state == "cancelled"  # down the chain
    assert _job(session_factory, ok_chain2).reason == (
        f"dependency never satisfied: job {ok_chain} ended as cancelled (after_ok)")
    cleanup_job = _job(session_factory, cleanup)
    assert cleanup_job.state == "pending"  # after_any is met: now it only waits for GPUs
    assert cleanup_job.reason_code not in (REASON_WAITING, REASON_NEVER)


def test_without_kill_invalid_dependency_the_job_waits_for_its_user(
    session_factory: sessionmaker[Session], clock: FakeClock, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "var", scheduler_policy="fifo",
                        local_cluster="2x8:A100-80GB", kill_invalid_dependency=False)
    w = _world(session_factory)
    backend = FakeBackend()
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)
    train = _submit(session_factory, w["pi"], clock, settings, project=w["slug"])
    evaluate = _submit(session_factory, w["pi"], clock, settings, project=w["slug"],
                       depends_on={"after_ok": [train]})
    loop.cycle()
    _end(backend, train, BackendJobState.FAILED, clock, 3)
    loop.cycle()
    loop.cycle()
    job = _job(session_factory, evaluate)
    assert (job.state, job.reason_code) == ("pending", REASON_NEVER)
    assert job.reason == f"dependency never satisfied: job {train} ended as failed (after_ok)"
    assert [r.job_id for r in backend.launched] == [str(train)]
    with session_scope(session_factory) as s:
        pi = s.get(User, w["pi"])
        assert pi is not None
        assert service.cancel(s, pi, evaluate, clock=clock).state == "cancelled"


class SelfSchedulingBackend(FakeBackend):
    """Like Slurm: takes every pending job at once and schedules it itself."""

    name = "selfsched"
    capabilities = BackendCapabilities(schedules_itself=True, multi_node=True,
                                       graceful_preemption=True, imports_foreign_jobs=False)


def test_self_scheduling_backend_gets_the_dependency_on_its_own_job(
    session_factory: sessionmaker[Session], clock: FakeClock, settings: Settings
) -> None:
    w = _world(session_factory)
    backend = SelfSchedulingBackend()
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)
    train = _submit(session_factory, w["pi"], clock, settings, project=w["slug"])
    evaluate = _submit(session_factory, w["pi"], clock, settings, project=w["slug"],
                       depends_on={"after_ok": [train]})
    branch = _submit(session_factory, w["pi"], clock, settings, project=w["slug"],
                     depends_on={"after_not_ok": [train]})
    loop.cycle()
    # train had no backend handle when this cycle began: the dependents wait a cycle.
    assert [r.job_id for r in backend.launched] == [str(train)]
    assert _job(session_factory, evaluate).reason_code == REASON_WAITING
    loop.cycle()
    launched = {r.job_id: r.after for r in backend.launched}
    assert launched[str(evaluate)] == (("after_ok", f"{train}.1"),)
    assert launched[str(branch)] == (("after_not_ok", f"{train}.1"),)
    # train completes: the backend would leave `branch` waiting forever; Rechenwerk
    # cancels it there (forward_cancels) since it can never run.
    _end(backend, train, BackendJobState.COMPLETED, clock, 0)
    loop.cycle()
    job = _job(session_factory, branch)
    assert job.state == "starting" and job.cancel_requested_at is not None
    assert job.reason_code == REASON_NEVER
    loop.cycle()
    assert f"{branch}.1" in backend.cancelled
    assert f"{evaluate}.1" not in backend.cancelled


def test_self_scheduling_backend_is_not_told_to_wait_for_another_backends_job(
    session_factory: sessionmaker[Session], clock: FakeClock, settings: Settings
) -> None:
    w = _world(session_factory)
    backend = SelfSchedulingBackend()
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)
    old = _submit(session_factory, w["pi"], clock, settings, project=w["slug"])
    with session_scope(session_factory) as s:  # still running on the local executor
        job = s.get(Job, old)
        assert job is not None
        job.state, job.backend, job.backend_handle = "running", "local", f"{old}.1"
    follow = _submit(session_factory, w["pi"], clock, settings, project=w["slug"],
                     depends_on={"after_ok": [old]})
    # (the poll reports it running: this stand-in answers for every handle)
    backend.status[f"{old}.1"] = BackendJobStatus(f"{old}.1", BackendJobState.RUNNING,
                                                  started_at=clock.now())
    loop.cycle()
    loop.cycle()
    assert backend.launched == []  # held by Rechenwerk until the local job ends
    assert _job(session_factory, follow).reason_code == REASON_WAITING
    _end(backend, old, BackendJobState.COMPLETED, clock, 0)
    loop.cycle()
    assert _job(session_factory, old).state == "completed"
    assert [(r.job_id, r.after) for r in backend.launched] == [(str(follow), ())]
