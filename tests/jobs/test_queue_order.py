"""The queue in the core's order with each job's priority term by term (squeue + sprio):
the pure view, the REST API (positions count the whole centre, rows only what the user
may see) and the CLI's table."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from factories import bearer, make_award, make_project, make_token, make_user
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.clock import FakeClock
from rechenwerk.scheduling.model import Node, PendingJob, ProjectInfo, Snapshot
from rechenwerk.scheduling.policies import make_policy
from rechenwerk.scheduling.queue_view import explain_queue


def _job(jid: str, project: str, t: float, *, gpus: int = 1, qos: str = "normal",
         attained: float = 0.0) -> PendingJob:
    return PendingJob(job_id=jid, project=project, gpus=gpus, qos=qos, walltime_s=3600.0,
                      submit_time=t, attained_gpu_s=attained)


NODES = (Node("n1", 4),)


def test_multifactor_view_is_by_priority_and_its_head_is_what_the_core_starts() -> None:
    # heavy has used far more than its share: its older, high-QOS job ranks below light's.
    projects = {"heavy": ProjectInfo(share=1.0, usage_gpu_s=9e6),
                "light": ProjectInfo(share=1.0, usage_gpu_s=1.0)}
    pending = (_job("1", "heavy", 0.0, qos="high"), _job("2", "light", 50.0),
               _job("3", "light", 10.0, gpus=2), _job("4", "heavy", 20.0))
    snap = Snapshot(now=100.0, nodes=NODES, running=(), pending=pending, projects=projects)
    policy = make_policy("multifactor+easy-backfill")
    view = explain_queue(policy, snap)
    totals = [q.priority.total for q in view.jobs if q.priority]
    assert len(totals) == 4 and totals == sorted(totals, reverse=True)
    assert [q.position for q in view.jobs] == [1, 2, 3, 4]
    assert view.jobs[0].job_id in {"2", "3"}  # light's jobs come first
    first = view.jobs[0].priority
    assert first is not None and first.fairshare > 9000 and first.age > 0
    heavy = next(q.priority for q in view.jobs if q.job_id == "1")
    assert heavy is not None and heavy.qos == pytest.approx(1000.0)  # high QOS, full weight
    assert "multifactor" in view.order

    # With room for exactly one 1-GPU job the core's main pass starts the view's head
    # (when the head is that job; else the view's first 1-GPU job after backfill rules).
    one_free = Snapshot(now=100.0, nodes=(Node("n1", 1),), running=(),
                        pending=tuple(j for j in pending if j.gpus == 1), projects=projects)
    head = explain_queue(policy, one_free).jobs[0].job_id
    started = [s.job_id for s in policy.decide(one_free).starts]
    assert started == [head]


def test_fifo_and_las_views() -> None:
    pending = (_job("a", "p", 30.0), _job("b", "p", 10.0, attained=1e9),
               _job("c", "q", 20.0))
    snap = Snapshot(now=100.0, nodes=NODES, running=(), pending=pending)
    fifo = explain_queue(make_policy("fifo"), snap)
    assert [q.job_id for q in fifo.jobs] == ["b", "c", "a"]
    assert all(q.priority is None for q in fifo.jobs) and "submit time" in fifo.order
    las = explain_queue(make_policy("las"), snap)
    assert [q.job_id for q in las.jobs][-1] == "b"  # most attained service goes last


def _two_projects(session: Session, clock: FakeClock) -> dict[str, Any]:
    pi_a, pi_b, stranger = make_user(session), make_user(session), make_user(session)
    a = make_project(session, pi=pi_a)
    b = make_project(session, pi=pi_b)
    make_award(session, a, gpu_hours=500.0)
    make_award(session, b, gpu_hours=500.0)
    now = clock.now()
    # a used 200 GPU-hours an hour ago: its fair-share factor falls well below b's.
    session.add(UsageRecord(project_id=a.id, gpus=8, gpu_hours=200.0, source="local",
                            started_at=now - timedelta(hours=26),
                            ended_at=now - timedelta(hours=1), created_at=now))
    session.commit()
    return {"a": a.slug, "b": b.slug, "pi_a": bearer(make_token(session, pi_a)),
            "pi_b": bearer(make_token(session, pi_b)),
            "stranger": bearer(make_token(session, stranger))}


def test_queue_api_orders_by_the_core_and_explains_priority(
        api_client: TestClient, session: Session, clock: FakeClock) -> None:
    w = _two_projects(session, clock)
    spec = {"command": "true", "gpus": 16, "walltime": "1h"}
    first_a = api_client.post("/api/v1/jobs", json={**spec, "project": w["a"], "name": "a1",
                                                   "qos": "high"}, headers=w["pi_a"]).json()
    clock.advance(60)
    later_b = api_client.post("/api/v1/jobs", json={**spec, "project": w["b"], "name": "b1"},
                              headers=w["pi_b"]).json()
    q = api_client.get("/api/v1/queue", headers=w["pi_a"]).json()
    assert q["queue_length"] == 2 and q["total"] == 1 and "multifactor" in q["order"]
    mine = q["items"][0]
    assert mine["id"] == first_a["id"]
    # b's later, normal-QOS job is first: a's usage costs more than high QOS gives.
    assert mine["position"] == 2
    prio = mine["priority"]
    assert set(prio) == {"total", "age", "fairshare", "jobsize", "qos"}
    assert prio["qos"] == pytest.approx(1000.0) and prio["jobsize"] == pytest.approx(1000.0)
    assert prio["total"] == pytest.approx(
        prio["age"] + prio["fairshare"] + prio["jobsize"] + prio["qos"], abs=0.01)
    theirs = api_client.get("/api/v1/queue", headers=w["pi_b"]).json()["items"]
    assert [(j["id"], j["position"]) for j in theirs] == [(later_b["id"], 1)]
    assert theirs[0]["priority"]["fairshare"] > prio["fairshare"]

    one = api_client.get(f"/api/v1/jobs/{first_a['id']}/priority", headers=w["pi_a"])
    assert one.status_code == 200, one.text
    assert one.json()["position"] == 2 and one.json()["queue_length"] == 2
    # Nobody learns of a job they cannot see; a job that is not waiting has no position.
    hidden = api_client.get(f"/api/v1/jobs/{first_a['id']}/priority", headers=w["stranger"])
    assert hidden.status_code == 404
    assert api_client.get("/api/v1/queue", headers=w["stranger"]).json()["items"] == []
    api_client.post(f"/api/v1/jobs/{later_b['id']}/cancel", headers=w["pi_b"])
    gone = api_client.get(f"/api/v1/jobs/{later_b['id']}/priority", headers=w["pi_b"])
    assert gone.status_code == 409 and "not waiting" in gone.json()["detail"]
    assert api_client.get("/api/v1/queue", headers=w["pi_a"]).json()["items"][0][
        "position"] == 1
