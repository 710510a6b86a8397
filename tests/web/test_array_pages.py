"""The portal shows a job array as one row (tasks per state) whose page lists every task,
and cancels the whole array from it (ASGI app, SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from factories import make_award, make_project, make_user
from portal_login import csrf as _csrf
from rechenwerk.access.security import hash_password
from rechenwerk.config import Settings
from rechenwerk.jobs import service
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.specs import parse_spec

PASSWORD = "correct-horse-battery"


def test_array_row_task_list_and_cancel(api_client: Any, session: Session,
                                        clock: Any) -> None:
    pi = make_user(session, username="arraypi", password_hash=hash_password(PASSWORD))
    project = make_project(session, pi=pi)
    make_award(session, project, gpu_hours=100.0)
    head = service.submit_job(session, pi, parse_spec({
        "name": "sweep", "project": project.slug, "command": ["true"], "gpus": 1,
        "walltime": "1h", "array": "0-4%2"}), clock=clock,
        settings=Settings(local_cluster="2x8:A100-80GB")).job
    single = service.submit(session, pi, parse_spec({
        "name": "solo", "project": project.slug, "command": ["true"], "gpus": 1,
        "walltime": "1h"}), clock=clock, settings=Settings(local_cluster="2x8:A100-80GB"))
    session.commit()
    page = api_client.get("/login")
    r = api_client.post("/login", data={"username": "arraypi", "password": PASSWORD,
                                        "csrf_token": _csrf(page.text)},
                        follow_redirects=False)
    assert r.status_code == 303, r.text

    listing = api_client.get("/jobs").text
    assert listing.count('data-testid="array-row"') == 1
    assert f"{head.id}_[0-4%2]" in listing and "5 pending" in listing
    assert f'href="/jobs/{single.id}"' in listing
    assert f'href="/jobs/{head.id + 1}"' not in listing  # the other tasks are not rows

    detail = api_client.get(f"/jobs/{head.id}")
    assert detail.status_code == 200
    assert f"Array {head.id}_[0-4%2]" in detail.text
    for i in range(5):
        assert f"{head.id}_{i}" in detail.text
    assert "Cancel the whole array (5 tasks not ended)" in detail.text
    task = api_client.get(f"/jobs/{head.id + 2}").text
    assert f"Job {head.id}_2" in task

    r = api_client.post(f"/jobs/{head.id}/cancel",
                        data={"csrf_token": _csrf(detail.text)}, follow_redirects=False)
    assert r.status_code == 303
    session.expire_all()
    assert session.scalar(select(func.count(Job.id)).where(
        Job.array_job_id == head.id, Job.state == "cancelled")) == 5
    assert "5 cancelled" in api_client.get("/jobs").text
