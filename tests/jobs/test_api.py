"""REST API for jobs, queue, balance and nodes (TestClient; the scheduler loop is driven
by hand so tests are deterministic)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from jobs_fake_backend import FakeBackend
from sqlalchemy.orm import Session

from factories import bearer, make_award, make_project, make_token, make_user
from rechenwerk.clock import FakeClock

SPEC = {"name": "train", "command": "python3 train.py --steps 10", "gpus": 2,
        "walltime": "1h"}


def _world(session: Session) -> dict[str, Any]:
    pi = make_user(session)
    stranger = make_user(session)
    op = make_user(session, operator=True)
    project = make_project(session, pi=pi)
    make_award(session, project, gpu_hours=20.0)
    out = {"slug": project.slug, "pi": bearer(make_token(session, pi)),
           "stranger": bearer(make_token(session, stranger)),
           "op": bearer(make_token(session, op))}
    session.commit()
    return out


def test_submit_show_list_cancel(api_client: TestClient, session: Session) -> None:
    w = _world(session)
    r = api_client.post("/api/v1/jobs", json={**SPEC, "project": w["slug"],
                                              "idempotency_key": "a"}, headers=w["pi"])
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["state"] == "pending" and job["created"] and job["committed_gpu_hours"] == 2.0
    again = api_client.post("/api/v1/jobs", json={**SPEC, "project": w["slug"],
                                                  "idempotency_key": "a"}, headers=w["pi"])
    assert again.status_code == 200 and again.json()["id"] == job["id"]
    assert not again.json()["created"]

    shown = api_client.get(f"/api/v1/jobs/{job['id']}", headers=w["pi"]).json()
    assert shown["spec"]["command"] == ["python3", "train.py", "--steps", "10"]
    assert [e["to"] for e in shown["events"]] == ["pending"]
    listed = api_client.get("/api/v1/jobs", params={"state": "pending"}, headers=w["pi"]).json()
    assert listed["total"] == 1
    assert api_client.get("/api/v1/jobs", headers=w["stranger"]).json()["total"] == 0
    assert api_client.get(f"/api/v1/jobs/{job['id']}", headers=w["stranger"]).status_code == 404
    assert api_client.get("/api/v1/jobs", headers=w["op"]).json()["total"] == 1

    q = api_client.get("/api/v1/queue", headers=w["pi"]).json()
    assert [j["id"] for j in q["items"]] == [job["id"]]
    bal = api_client.get(f"/api/v1/projects/{w['slug']}/balance", headers=w["pi"]).json()
    assert bal["committed_gpu_hours"] == 2.0 and bal["available_gpu_hours"] == 18.0
    assert api_client.get(f"/api/v1/projects/{w['slug']}/balance",
                          headers=w["stranger"]).status_code == 404

    logs = api_client.get(f"/api/v1/jobs/{job['id']}/logs", headers=w["pi"]).json()
    assert logs["data"] == "" and not logs["complete"] and logs["latest_attempt"] == 0

    c = api_client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=w["pi"])
    assert c.status_code == 200 and c.json()["state"] == "cancelled"
    c2 = api_client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=w["pi"])
    assert c2.status_code == 409 and "already ended" in c2.json()["detail"]
    bal = api_client.get(f"/api/v1/projects/{w['slug']}/balance", headers=w["pi"]).json()
    assert bal["available_gpu_hours"] == 20.0


def test_bad_input_is_a_problem_response(api_client: TestClient, session: Session) -> None:
    w = _world(session)
    r = api_client.post("/api/v1/jobs", json={**SPEC, "project": w["slug"], "gpus": 0},
                        headers=w["pi"])
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "invalid_input" and "gpus" in body["detail"]
    assert any(e["field"] == "gpus" for e in body["errors"])
    r = api_client.post("/api/v1/jobs", json={**SPEC, "project": w["slug"], "gpus": 64},
                        headers=w["pi"])
    assert r.status_code == 422 and "centre has only 16" in r.json()["detail"]
    r = api_client.post("/api/v1/jobs", json={**SPEC, "project": w["slug"], "gpus": 16,
                                              "walltime": "2h"}, headers=w["pi"])
    assert r.status_code == 402
    assert "20.00 GPU-hours available" in r.json()["detail"]
    r = api_client.post("/api/v1/jobs", json={**SPEC, "project": w["slug"]},
                        headers=w["stranger"])
    assert r.status_code == 404
    r = api_client.post("/api/v1/jobs", json={**SPEC, "project": "nope"}, headers=w["pi"])
    assert r.status_code == 404
    assert api_client.post("/api/v1/jobs", json=SPEC).status_code == 401
    assert api_client.get("/api/v1/jobs", headers=w["pi"]).json()["total"] == 0
    r = api_client.get("/api/v1/jobs", params={"state": "sleeping"}, headers=w["pi"])
    assert r.status_code == 422


def test_nodes_drain_resume_operator_only(api_client: TestClient, session: Session) -> None:
    w = _world(session)
    assert api_client.get("/api/v1/nodes", headers=w["pi"]).status_code == 403
    nodes = api_client.get("/api/v1/nodes", headers=w["op"]).json()
    assert nodes["total_gpus"] == 16 and [n["name"] for n in nodes["items"]] == [
        "node01", "node02"]
    r = api_client.post("/api/v1/nodes/node01/drain", json={"reason": "ECC errors"},
                        headers=w["op"])
    assert r.status_code == 200 and r.json()["state"] == "drained"
    assert r.json()["drain_reason"] == "ECC errors"
    assert api_client.post("/api/v1/nodes/node09/drain", headers=w["op"]).status_code == 404
    assert api_client.post("/api/v1/nodes/node01/drain", headers=w["pi"]).status_code == 403
    r = api_client.post("/api/v1/nodes/node01/resume", headers=w["op"])
    assert r.json()["state"] == "idle"


def test_scheduler_loop_over_api_with_fake_clock(api_client: TestClient, session: Session,
                                                 clock: FakeClock) -> None:
    """The queue shows the core's reason for a waiting job."""
    w = _world(session)
    big = {**SPEC, "project": w["slug"], "gpus": 8, "walltime": "1h"}
    ids = [api_client.post("/api/v1/jobs", json={**big, "name": f"j{i}"},
                           headers=w["pi"]).json()["id"] for i in range(2)]
    api_client.post("/api/v1/nodes/node01/drain", headers=w["op"])
    from rechenwerk.jobs.loop import SchedulerLoop

    runtime = api_client.app.state.runtime  # type: ignore[attr-defined]
    loop = SchedulerLoop(runtime.session_factory, FakeBackend(), settings=runtime.settings,
                         clock=clock)
    loop.cycle()
    first = api_client.get(f"/api/v1/jobs/{ids[0]}", headers=w["pi"]).json()
    second = api_client.get(f"/api/v1/jobs/{ids[1]}", headers=w["pi"]).json()
    assert first["state"] == "starting" and first["placement"][0][0] == "node02"
    assert second["state"] == "pending" and second["reason_code"]
    q = api_client.get("/api/v1/queue", headers=w["pi"]).json()
    assert q["items"][0]["reason"] == second["reason"]
