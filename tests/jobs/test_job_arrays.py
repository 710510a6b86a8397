"""Job arrays end to end below the faces: one submission stores every task (bulk, one
balance check, all or nothing; SQLite and PostgreSQL), the scheduler honours %N with the
reason in words, cancel one task or all, and each task sees its index on the real local
executor."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from jobs_fake_backend import FakeBackend
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from factories import make_award, make_project, make_user
from rechenwerk.access.models import AuditEntry, User
from rechenwerk.accounting.balance import project_balance
from rechenwerk.clock import FakeClock, WallClock
from rechenwerk.config import Settings
from rechenwerk.errors import BudgetExceeded, InvalidInput, InvalidTransition, NotFound
from rechenwerk.execution.base import BackendJobState, BackendJobStatus
from rechenwerk.execution.local import LocalExecutor
from rechenwerk.jobs import service
from rechenwerk.jobs.loop import SchedulerLoop
from rechenwerk.jobs.models import Job, JobArray, JobEvent
from rechenwerk.jobs.specs import parse_spec
from rechenwerk.store.session import session_scope
from waiting import wait_for

SETTINGS = Settings(local_cluster="2x8:A100-80GB", max_array_tasks=500)


def _spec(project: str, **kw: object) -> object:
    doc: dict[str, object] = {"name": "sweep", "project": project, "command": ["true"],
                              "gpus": 1, "walltime": "1h"}
    doc.update(kw)
    return parse_spec(doc)


def _world(session: Session, gpu_hours: float = 1000.0) -> tuple[User, str, User]:
    pi = make_user(session)
    project = make_project(session, pi=pi)
    make_award(session, project, gpu_hours=gpu_hours)
    session.flush()
    return pi, project.slug, make_user(session)


def _count(session: Session, *where: object) -> int:
    return int(session.scalar(select(func.count(Job.id)).where(*where)) or 0)  # type: ignore[arg-type]


def test_one_submission_stores_every_task_with_one_balance_check(
        session: Session, clock: FakeClock) -> None:
    pi, slug, _ = _world(session)
    result = service.submit_job(session, pi, _spec(slug, array="0-99:2%5", gpus=2,
                                                   idempotency_key="sweep-1"),
                                clock=clock, settings=SETTINGS)
    head = result.job
    assert result.created and result.tasks == 50
    assert head.array_job_id == head.id and head.array_task_id == 0
    session.flush()
    tasks = service.array_tasks(session, head)
    assert [t.array_task_id for t in tasks] == list(range(0, 100, 2))
    assert {t.array_job_id for t in tasks} == {head.id}
    assert {t.state for t in tasks} == {"pending"} and {t.gpus for t in tasks} == {2}
    assert [t.idempotency_key for t in tasks[:2]] == ["sweep-1", None]
    assert service.display_id(tasks[3]) == f"{head.id}_6"
    info = session.get(JobArray, head.id)
    assert info is not None
    assert (info.task_count, info.task_limit) == (50, 5)
    assert info.expression.endswith("%5")  # canonical: the indices listed, then the limit
    assert parse_spec({"name": "a", "project": slug, "command": ["true"], "gpus": 1,
                       "walltime": 60, "array": info.expression}).array == info.expression
    # Every task has its first event, and the balance commits all of them.
    events = session.scalar(select(func.count(JobEvent.id)).where(
        JobEvent.job_id.in_([t.id for t in tasks]), JobEvent.to_state == "pending"))
    assert events == 50
    bal = project_balance(session, _project(session, slug), clock.now())  # type: ignore[arg-type]
    assert bal.committed_gpu_hours == pytest.approx(50 * 2 * 1.0)
    # The idempotency key names the whole array: a replay stores nothing.
    again = service.submit_job(session, pi, _spec(slug, array="0-99:2%5", gpus=2,
                                                   idempotency_key="sweep-1"),
                               clock=clock, settings=SETTINGS)
    assert not again.created and again.job.id == head.id and again.tasks == 50
    assert _count(session) == 50


def _project(session: Session, slug: str) -> object:
    from rechenwerk.access.projects import get_project

    return get_project(session, slug)


def test_an_array_the_balance_cannot_pay_stores_nothing(session: Session,
                                                        clock: FakeClock) -> None:
    pi, slug, _ = _world(session, gpu_hours=10.0)
    with pytest.raises(BudgetExceeded, match=r"array of 11 tasks needs 11\.00 GPU-hours"):
        service.submit_job(session, pi, _spec(slug, array="0-10"), clock=clock,
                           settings=SETTINGS)
    assert _count(session) == 0
    ok = service.submit_job(session, pi, _spec(slug, array="0-9"), clock=clock,
                            settings=SETTINGS)
    assert ok.tasks == 10


def test_arrays_above_the_operator_limit_or_malformed_are_refused(
        session: Session, clock: FakeClock) -> None:
    pi, slug, _ = _world(session)
    with pytest.raises(InvalidInput, match="more than 500 tasks") as exc:
        service.submit_job(session, pi, _spec(slug, array="0-500"), clock=clock,
                           settings=SETTINGS)
    assert exc.value.field == "array"
    with pytest.raises(InvalidInput, match="array") as bad:
        _spec(slug, array="3-1")
    assert bad.value.field == "array" and "ends before it starts" in bad.value.message
    assert _count(session) == 0


def test_cancel_one_task_or_the_whole_array(session: Session, clock: FakeClock) -> None:
    pi, slug, stranger = _world(session)
    head = service.submit_job(session, pi, _spec(slug, array="0-4"), clock=clock,
                              settings=SETTINGS).job
    session.flush()
    with pytest.raises(NotFound):
        service.get_task(session, stranger, head.id, 2)
    with pytest.raises(NotFound):
        service.get_task(session, pi, head.id, 9)
    one = service.cancel_task(session, pi, head.id, 0, clock=clock)
    assert one.id == head.id and one.state == "cancelled"  # task 0 only
    assert _count(session, Job.array_job_id == head.id, Job.state == "pending") == 4
    service.cancel(session, pi, head.id, clock=clock)  # the array's id: all of it
    assert _count(session, Job.array_job_id == head.id, Job.state == "cancelled") == 5
    with pytest.raises(InvalidTransition, match="already ended"):
        service.cancel(session, pi, head.id, clock=clock)
    froms = session.scalars(select(JobEvent.from_state).where(
        JobEvent.to_state == "cancelled")).all()
    assert sorted(froms) == ["pending"] * 5
    audited = session.scalars(select(AuditEntry).where(AuditEntry.action == "job.cancel")
                              .order_by(AuditEntry.id)).all()
    assert [(e.actor, e.entity_id) for e in audited] == [(pi.username, str(head.id))] * 2
    assert audited[0].changes == {"state": ["pending", "cancelled"]}  # task 0 alone
    assert audited[1].changes == {"array": True, "cancelled": 4, "stopping": 0}
    bal = project_balance(session, _project(session, slug), clock.now())  # type: ignore[arg-type]
    assert bal.committed_gpu_hours == pytest.approx(0.0)


def test_list_groups_an_array_into_one_row(session: Session, clock: FakeClock) -> None:
    pi, slug, _ = _world(session)
    single = service.submit(session, pi, _spec(slug), clock=clock, settings=SETTINGS)
    head = service.submit_job(session, pi, _spec(slug, array="0-9"), clock=clock,
                              settings=SETTINGS).job
    session.flush()
    rows, total = service.list_jobs(session, pi, group_arrays=True)
    assert [j.id for j in rows] == [head.id, single.id] and total == 2
    rows, total = service.list_jobs(session, pi)
    assert total == 11
    service.cancel_task(session, pi, head.id, 3, clock=clock)
    rows, total = service.list_jobs(session, pi, states=["cancelled"], group_arrays=True)
    assert [j.id for j in rows] == [head.id]  # listed: one of its tasks is cancelled
    assert total == 1
    # counted once each, whatever the number of states and tasks that match
    for states in (["pending"], ["pending", "cancelled"]):
        rows, total = service.list_jobs(session, pi, states=states, group_arrays=True,
                                        project=slug)
        assert [j.id for j in rows] == [head.id, single.id] and total == 2
    rows, total = service.list_jobs(session, pi, states=["pending"], group_arrays=True,
                                    q="nothing-like-it")
    assert rows == [] and total == 0
    rows, total = service.list_jobs(session, pi, states=["completed"], group_arrays=True)
    assert rows == [] and total == 0
    assert service.array_state_counts(session, [head.id]) == {
        head.id: {"pending": 9, "cancelled": 1}}


# --------------------------------------------------------------------------- the loop


def _setup(session_factory: sessionmaker[Session], *, wall: bool = False) -> tuple[int, str]:
    with session_scope(session_factory) as s:
        pi = make_user(s)
        project = make_project(s, pi=pi)
        if wall:
            make_award(s, project, gpu_hours=10_000,
                       starts_at=WallClock().now() - timedelta(days=1))
        else:
            make_award(s, project, gpu_hours=10_000)
        return pi.id, project.slug


def _submit(session_factory: sessionmaker[Session], user_id: int, clock: object,
            settings: Settings, **kw: object) -> int:
    with session_scope(session_factory) as s:
        user = s.get(User, user_id)
        assert user is not None
        return service.submit_job(s, user, _spec(**kw),  # type: ignore[arg-type]
                                  clock=clock, settings=settings).job.id  # type: ignore[arg-type]


def _tasks(session_factory: sessionmaker[Session], head: int) -> list[Job]:
    with session_scope(session_factory) as s:
        rows = list(s.scalars(select(Job).where(Job.array_job_id == head)
                              .order_by(Job.array_task_id)))
        for r in rows:
            s.expunge(r)
        return rows


def test_scheduler_runs_at_most_the_limit_and_says_why_the_rest_wait(
        session_factory: sessionmaker[Session], clock: FakeClock, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", scheduler_policy="fifo",
                        local_cluster="2x8:A100-80GB")
    pi, slug = _setup(session_factory)
    backend = FakeBackend()
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)
    head = _submit(session_factory, pi, clock, settings, project=slug, array="0-5%2")
    loop.cycle()
    tasks = _tasks(session_factory, head)
    assert [t.state for t in tasks] == ["starting"] * 2 + ["pending"] * 4
    assert {t.reason_code for t in tasks[2:]} == {"array_limit"}
    assert tasks[2].reason == "array task limit: at most 2 of the array's tasks run at once"
    assert [r.array.task_id for r in backend.launched if r.array] == [0, 1]
    assert backend.launched[0].array is not None
    assert backend.launched[0].array.array_job_id == str(head)
    assert (backend.launched[0].array.task_count, backend.launched[0].array.task_max) == (6, 5)
    # Task 0 ends: exactly one more starts.
    handle = tasks[0].backend_handle
    assert handle is not None
    backend.status[handle] = BackendJobStatus(handle, BackendJobState.COMPLETED,
                                              started_at=clock.now(), ended_at=clock.now(),
                                              exit_code=0)
    loop.cycle()
    states = [t.state for t in _tasks(session_factory, head)]
    assert states == ["completed", "starting", "starting", "pending", "pending", "pending"]


def test_each_task_sees_its_index_on_the_local_executor(
        session_factory: sessionmaker[Session], tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", scheduler_policy="fifo",
                        local_cluster="1x4:A100-80GB", kill_grace_s=1.0)
    pi, slug = _setup(session_factory, wall=True)
    clock = WallClock()
    backend = LocalExecutor(settings.data_dir, cluster=settings.local_cluster, kill_grace_s=1.0)
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)  # type: ignore[arg-type]
    code = ("import os; print(' '.join(os.environ[f'RECHENWERK_ARRAY_{k}'] for k in "
            "('JOB_ID', 'TASK_ID', 'TASK_COUNT', 'TASK_MIN', 'TASK_MAX')))")
    head = _submit(session_factory, pi, clock, settings, project=slug, array="3,5,7-8%3",
                   command=[sys.executable, "-c", code])

    def all_ended() -> bool:
        loop.cycle()
        return {t.state for t in _tasks(session_factory, head)} <= {"completed", "failed"}

    wait_for(all_ended, "every task to end", step=0.1)
    for task in _tasks(session_factory, head):
        assert task.state == "completed", task.reason
        out = settings.data_dir / "logs" / str(task.id) / "1" / "stdout.log"
        assert out.read_text().split() == [str(head), str(task.array_task_id), "4", "3", "8"]


# --------------------------------------------------------------------------- REST API


def test_api_submits_lists_shows_and_cancels_an_array(api_client: object,
                                                     session: Session) -> None:
    from fastapi.testclient import TestClient

    from factories import bearer, make_token

    assert isinstance(api_client, TestClient)
    pi = make_user(session)
    stranger = make_user(session)
    project = make_project(session, pi=pi)
    make_award(session, project, gpu_hours=100.0)
    h, other = bearer(make_token(session, pi)), bearer(make_token(session, stranger))
    session.commit()
    doc = {"name": "sweep", "project": project.slug, "command": ["true"], "gpus": 1,
           "walltime": "1h", "array": "0-9%3", "idempotency_key": "k"}
    r = api_client.post("/api/v1/jobs", json=doc, headers=h)
    assert r.status_code == 201, r.text
    head = r.json()
    assert head["tasks"] == 10 and head["display_id"] == f"{head['id']}_0"
    assert api_client.post("/api/v1/jobs", json=doc, headers=h).json()["tasks"] == 10
    bad = api_client.post("/api/v1/jobs", json={**doc, "array": "0-9:x"}, headers=h)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "array"
    big = api_client.post("/api/v1/jobs", json={**doc, "array": "0-20000",
                                                "idempotency_key": "b"}, headers=h)
    assert big.status_code == 422 and "more than 10000 tasks" in big.json()["detail"]

    listed = api_client.get("/api/v1/jobs", headers=h).json()
    assert listed["total"] == 1
    assert listed["items"][0]["array"] == {
        "id": head["id"], "display_id": f"{head['id']}_[0-9%3]", "expression": "0-9%3",
        "task_count": 10, "task_limit": 3, "states": {"pending": 10}}
    expanded = api_client.get("/api/v1/jobs", params={"expand": "true"}, headers=h).json()
    assert expanded["total"] == 10
    shown = api_client.get(f"/api/v1/jobs/{head['id']}", headers=h).json()
    assert [t["display_id"] for t in shown["tasks"]] == [f"{head['id']}_{i}" for i in range(10)]
    task = api_client.get(f"/api/v1/jobs/{head['id']}/tasks/4", headers=h)
    assert task.status_code == 200 and task.json()["array_task_id"] == 4
    assert "tasks" not in task.json()
    assert api_client.get(f"/api/v1/jobs/{head['id']}/tasks/4",
                          headers=other).status_code == 404
    assert api_client.post(f"/api/v1/jobs/{head['id']}/tasks/4/cancel",
                           headers=other).status_code == 404
    one = api_client.post(f"/api/v1/jobs/{head['id']}/tasks/4/cancel", headers=h).json()
    assert one["state"] == "cancelled"
    everything = api_client.post(f"/api/v1/jobs/{head['id']}/cancel", headers=h).json()
    assert everything["array"]["states"] == {"cancelled": 10}
    bal = api_client.get(f"/api/v1/projects/{project.slug}/balance", headers=h).json()
    assert bal["available_gpu_hours"] == 100.0
