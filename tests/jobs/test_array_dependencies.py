"""Dependencies and job arrays together, as in Slurm: a job that depends on an array's id
waits for every task of it; an array that depends on a job holds all its tasks."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from factories import bearer, make_award, make_project, make_token, make_user
from rechenwerk.jobs.models import Job, JobDependency

SPEC = {"name": "sweep", "command": "true", "gpus": 1, "walltime": "1h"}


def _world(session: Session) -> dict[str, Any]:
    pi = make_user(session)
    project = make_project(session, pi=pi)
    make_award(session, project, gpu_hours=100.0)
    session.commit()
    return {"slug": project.slug, "pi": bearer(make_token(session, pi))}


def test_after_ok_on_an_array_waits_for_each_task(api_client: TestClient,
                                                  session: Session) -> None:
    w = _world(session)
    sweep = api_client.post("/api/v1/jobs", json={**SPEC, "project": w["slug"],
                                                 "array": "0-2"}, headers=w["pi"])
    assert sweep.status_code == 201, sweep.text
    head = sweep.json()["id"]
    tasks = list(session.scalars(select(Job.id).where(Job.array_job_id == head)))
    session.rollback()
    assert len(tasks) == 3
    r = api_client.post("/api/v1/jobs", json={**SPEC, "name": "pick-best", "project": w["slug"],
                                             "depends_on": {"after_ok": [head]}},
                        headers=w["pi"])
    assert r.status_code == 201, r.text
    rows = session.execute(select(JobDependency.kind, JobDependency.depends_on_id)
                           .where(JobDependency.job_id == r.json()["id"])).all()
    assert sorted(rows) == [("after_ok", t) for t in sorted(tasks)]
    assert r.json()["reason_code"] == "dependency"


def test_an_array_that_depends_on_a_job_holds_every_task(api_client: TestClient,
                                                         session: Session) -> None:
    w = _world(session)
    train = api_client.post("/api/v1/jobs", json={**SPEC, "name": "train",
                                                 "project": w["slug"]}, headers=w["pi"])
    r = api_client.post("/api/v1/jobs", json={**SPEC, "project": w["slug"], "array": "0-3%2",
                                             "depends_on": {"after_ok": [train.json()["id"]]}},
                        headers=w["pi"])
    assert r.status_code == 201, r.text
    head = r.json()["id"]
    waiting = session.scalar(select(func.count()).select_from(Job).where(
        Job.array_job_id == head, Job.dependency_wait.is_(True)))
    deps = session.scalar(select(func.count()).select_from(JobDependency).where(
        JobDependency.depends_on_id == train.json()["id"]))
    assert waiting == 4 and deps == 4
