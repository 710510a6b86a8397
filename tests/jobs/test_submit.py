"""Submission: authorisation, centre limits, idempotency, live balance, overdraft policy."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from factories import T0, make_award, make_project, make_user
from rechenwerk.accounting.balance import project_balance
from rechenwerk.accounting.charging import settle_usage
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.clock import FakeClock
from rechenwerk.config import Settings
from rechenwerk.errors import BudgetExceeded, InvalidInput, InvalidTransition, NotFound
from rechenwerk.execution.base import BackendJobState, BackendJobStatus
from rechenwerk.jobs import progress as job_progress
from rechenwerk.jobs import service
from rechenwerk.jobs import transitions as job_transitions
from rechenwerk.jobs.models import Job, JobEvent
from rechenwerk.jobs.specs import parse_spec
from rechenwerk.jobs.states import JobState

SETTINGS = Settings(local_cluster="2x8:A100-80GB", overdraft_policy="refuse")


def spec(project: str, **kw: object) -> object:
    doc = {"name": "t", "project": project, "command": ["true"], "gpus": 2, "walltime": "1h"}
    doc.update(kw)
    return parse_spec(doc)


def setup(session: Session, gpu_hours: float = 100.0) -> tuple[object, object, object]:
    pi = make_user(session)
    project = make_project(session, pi=pi)
    make_award(session, project, gpu_hours=gpu_hours)
    session.flush()
    return pi, project, make_user(session)


def count_jobs(session: Session) -> int:
    return int(session.scalar(select(func.count(Job.id))) or 0)


def test_submit_stores_pending_job_and_commits_balance(session: Session, clock: FakeClock) -> None:
    pi, project, _ = setup(session)
    job = service.submit(session, pi, spec(project.slug, gpus=4, walltime="2h"),
                         clock=clock, settings=SETTINGS)
    assert job.state == "pending" and job.gpus == 4 and job.walltime_s == 7200
    assert job.qos == "normal" and not job.over_budget
    bal = project_balance(session, project, clock.now())
    assert bal.awarded_gpu_hours == pytest.approx(100.0)
    assert bal.committed_gpu_hours == pytest.approx(8.0)
    assert bal.available_gpu_hours == pytest.approx(92.0)
    events = session.scalars(select(JobEvent).where(JobEvent.job_id == job.id)).all()
    assert [(e.from_state, e.to_state, e.reason, e.at) for e in events] == [
        (None, "pending", "submitted", job.submitted_at)]


def test_idempotency_key_returns_first_job(session: Session, clock: FakeClock) -> None:
    pi, project, _ = setup(session)
    first = service.submit_job(session, pi, spec(project.slug, idempotency_key="k1"),
                               clock=clock, settings=SETTINGS)
    again = service.submit_job(session, pi, spec(project.slug, idempotency_key="k1", gpus=8),
                               clock=clock, settings=SETTINGS)
    assert first.created and not again.created
    assert again.job.id == first.job.id and again.job.gpus == 2
    assert count_jobs(session) == 1


def test_idempotent_replay_wins_over_a_budget_error(session: Session, clock: FakeClock) -> None:
    """A client retrying after its award expired (or ran out) gets the job it already
    submitted, not an error: the key is looked up before the balance is judged."""
    pi, project, _ = setup(session, gpu_hours=2.0)
    first = service.submit_job(session, pi, spec(project.slug, gpus=1, walltime="1h",
                                                 idempotency_key="retry"),
                               clock=clock, settings=SETTINGS)
    # Now over budget: a new key is refused ...
    with pytest.raises(BudgetExceeded):
        service.submit_job(session, pi, spec(project.slug, gpus=2, walltime="1h"),
                           clock=clock, settings=SETTINGS)
    again = service.submit_job(session, pi, spec(project.slug, gpus=2, walltime="1h",
                                                 idempotency_key="retry"),
                               clock=clock, settings=SETTINGS)
    assert not again.created and again.job.id == first.job.id
    # ... and after every award expired (no active period row at all), too.
    clock.advance(400 * 86400)
    late = service.submit_job(session, pi, spec(project.slug, idempotency_key="retry"),
                              clock=clock, settings=SETTINGS)
    assert not late.created and late.job.id == first.job.id
    assert count_jobs(session) == 1


@pytest.mark.parametrize(
    ("change", "error", "fragment"),
    [
        ({"gpus": 17}, InvalidInput, "only 16"),
        ({"walltime": "3d"}, InvalidInput, "above the limit of QOS 'normal'"),
        ({"container_image": "pytorch:24.01"}, InvalidInput, "container images"),
        ({"workdir": "relative/dir"}, InvalidInput, "absolute path"),
    ],
)
def test_bad_submissions_store_nothing(session: Session, clock: FakeClock,
                                       change: dict[str, object], error: type[Exception],
                                       fragment: str) -> None:
    pi, project, _ = setup(session)
    with pytest.raises(error, match=fragment):
        service.submit(session, pi, spec(project.slug, **change), clock=clock, settings=SETTINGS)
    assert count_jobs(session) == 0


def test_unknown_project_and_non_member(session: Session, clock: FakeClock) -> None:
    _, project, stranger = setup(session)
    with pytest.raises(NotFound, match="'nope' not found"):
        service.submit(session, stranger, spec("nope"), clock=clock, settings=SETTINGS)
    with pytest.raises(NotFound, match="not found"):
        service.submit(session, stranger, spec(project.slug), clock=clock, settings=SETTINGS)
    assert count_jobs(session) == 0


def test_budget_refused_with_balance_in_message(session: Session, clock: FakeClock) -> None:
    pi, project, _ = setup(session, gpu_hours=10.0)
    service.submit(session, pi, spec(project.slug, gpus=4, walltime="2h"), clock=clock,
                   settings=SETTINGS)  # commits 8 of 10
    with pytest.raises(BudgetExceeded) as info:
        service.submit(session, pi, spec(project.slug, gpus=2, walltime="2h"), clock=clock,
                       settings=SETTINGS)
    assert "needs 4.00 GPU-hours" in info.value.message
    assert "2.00 GPU-hours available" in info.value.message
    assert count_jobs(session) == 1


def test_overdraft_low_qos_policy(session: Session, clock: FakeClock) -> None:
    pi, project, _ = setup(session, gpu_hours=1.0)
    low = Settings(local_cluster="2x8:A100-80GB", overdraft_policy="low_qos")
    job = service.submit(session, pi, spec(project.slug, gpus=2, walltime="1h", qos="high"),
                         clock=clock, settings=low)
    assert job.qos == "low" and job.requested_qos == "high" and job.over_budget


def test_expired_award_refused(session: Session) -> None:
    pi, project, _ = setup(session)
    late = FakeClock(T0 + timedelta(days=400))
    with pytest.raises(BudgetExceeded, match="expired"):
        service.submit(session, pi, spec(project.slug), clock=late, settings=SETTINGS)
    assert count_jobs(session) == 0


def test_no_award_refused(session: Session, clock: FakeClock) -> None:
    pi = make_user(session)
    project = make_project(session, pi=pi)
    with pytest.raises(BudgetExceeded, match="no award"):
        service.submit(session, pi, spec(project.slug), clock=clock, settings=SETTINGS)


def test_settle_is_idempotent_and_moves_commitment_to_usage(session: Session,
                                                            clock: FakeClock) -> None:
    pi, project, _ = setup(session)
    job = service.submit(session, pi, spec(project.slug, gpus=4, walltime="2h"), clock=clock,
                         settings=SETTINGS)
    now = clock.now()
    assert job_transitions.transition(session, job, JobState.STARTING, now=now,
                              values={"attempt": 1, "backend_handle": "h1",
                                      "placement": [["node01", [0, 1, 2, 3]]]})
    start = now + timedelta(seconds=5)
    running = BackendJobStatus("h1", BackendJobState.RUNNING, started_at=start)
    assert job_progress.apply_backend_status(session, job, running, now=start)
    assert not job_progress.apply_backend_status(session, job, running, now=start)  # duplicate
    end = start + timedelta(minutes=30)
    done = BackendJobStatus("h1", BackendJobState.COMPLETED, started_at=start, ended_at=end,
                            exit_code=0)
    assert job_progress.apply_backend_status(session, job, done, now=end)
    assert not job_progress.apply_backend_status(session, job, done, now=end)  # late duplicate
    late_fail = BackendJobStatus("h1", BackendJobState.FAILED, ended_at=end, exit_code=1)
    assert not job_progress.apply_backend_status(session, job, late_fail, now=end)
    assert job.state == "completed" and job.ended_at == end and job.exit_code == 0
    records = session.scalars(select(UsageRecord)).all()
    assert len(records) == 1 and records[0].gpu_hours == pytest.approx(2.0)
    again = settle_usage(session, project_id=project.id, gpus=4, started_at=start, ended_at=end,
                         now=end, job_id=job.id, attempt=1)
    assert again.id == records[0].id
    bal = project_balance(session, project, end)
    assert bal.settled_gpu_hours == pytest.approx(2.0)
    assert bal.committed_gpu_hours == pytest.approx(0.0)
    assert bal.available_gpu_hours == pytest.approx(98.0)
    history = [(e.from_state, e.to_state) for e in service.job_events(session, job)]
    assert history == [(None, "pending"), ("pending", "starting"), ("starting", "running"),
                       ("running", "completed")]


def test_preemption_requeues_and_settles(session: Session, clock: FakeClock) -> None:
    pi, project, _ = setup(session)
    job = service.submit(session, pi, spec(project.slug, gpus=2), clock=clock, settings=SETTINGS)
    now = clock.now()
    job_transitions.transition(session, job, JobState.STARTING, now=now,
                       values={"attempt": 1, "backend_handle": "h", "placement": [["n", [0, 1]]]})
    job_progress.apply_backend_status(session, job, BackendJobStatus(
        "h", BackendJobState.RUNNING, started_at=now), now=now)
    end = now + timedelta(minutes=15)
    assert job_progress.apply_backend_status(session, job, BackendJobStatus(
        "h", BackendJobState.PREEMPTED, started_at=now, ended_at=end), now=end)
    assert job.state == "pending" and job.backend_handle is None and job.placement is None
    assert job.attained_gpu_s == pytest.approx(2 * 900)
    assert job.reason_code == "requeued"
    bal = project_balance(session, project, end)
    assert bal.settled_gpu_hours == pytest.approx(0.5)
    assert bal.committed_gpu_hours == pytest.approx(2.0)  # it waits again: full walltime


def test_cancel_pending_and_terminal(session: Session, clock: FakeClock) -> None:
    pi, project, member = setup(session)
    job = service.submit(session, pi, spec(project.slug), clock=clock, settings=SETTINGS)
    with pytest.raises(NotFound):
        service.cancel(session, member, job.id, clock=clock)  # not a member
    service.cancel(session, pi, job.id, clock=clock)
    assert job.state == "cancelled" and job.ended_at is not None
    with pytest.raises(InvalidTransition, match="already ended"):
        service.cancel(session, pi, job.id, clock=clock)
    assert project_balance(session, project, clock.now()).committed_gpu_hours == 0


def test_cancel_running_requests_stop(session: Session, clock: FakeClock) -> None:
    pi, project, _ = setup(session)
    job = service.submit(session, pi, spec(project.slug), clock=clock, settings=SETTINGS)
    job_transitions.transition(session, job, JobState.STARTING, now=clock.now(),
                       values={"attempt": 1, "backend_handle": "h"})
    service.cancel(session, pi, job.id, clock=clock)
    assert job.state == "starting" and job.cancel_requested_at is not None
    assert job.reason_code == "cancelling"


def test_visibility(session: Session, clock: FakeClock) -> None:
    pi, project, stranger = setup(session)
    op = make_user(session, operator=True)
    job = service.submit(session, pi, spec(project.slug), clock=clock, settings=SETTINGS)
    assert service.get_job(session, op, job.id).id == job.id
    with pytest.raises(NotFound):
        service.get_job(session, stranger, job.id)
    assert service.list_jobs(session, stranger)[1] == 0
    assert service.list_jobs(session, pi, states=["pending"])[1] == 1
    with pytest.raises(InvalidInput, match="unknown job state"):
        service.list_jobs(session, pi, states=["sleeping"])


@pytest.mark.parametrize(("runtime", "image", "fragment"), [
    ("", "docker://nvcr.io/nvidia/pytorch:24.05-py3", "no container runtime configured"),
    ("apptainer exec {image}", "--bind=/:/x", "not an image reference"),
])
def test_slurm_container_submissions_are_checked_before_storing(
        session: Session, clock: FakeClock, runtime: str, image: str, fragment: str) -> None:
    pi, project, _ = setup(session)
    settings = Settings(executor="slurm", slurm_container_runtime=runtime)
    with pytest.raises(InvalidInput, match=fragment):
        service.submit(session, pi, spec(project.slug, container_image=image), clock=clock,
                       settings=settings)
    assert count_jobs(session) == 0


def test_slurm_with_a_runtime_accepts_an_image(session: Session, clock: FakeClock) -> None:
    pi, project, _ = setup(session)
    settings = Settings(executor="slurm", slurm_container_runtime="apptainer exec {image}")
    job = service.submit(session, pi, spec(project.slug, container_image="/img/torch.sif"),
                         clock=clock, settings=settings)
    assert job.spec["container_image"] == "/img/torch.sif"
