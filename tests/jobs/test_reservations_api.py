"""Advance reservations over the REST API: operator-only writes, what users may see, bad
input, submission with ``reservation``, and the scheduler loop planning around them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from jobs_fake_backend import FakeBackend
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from factories import bearer, make_award, make_project, make_token, make_user
from rechenwerk.clock import FakeClock
from rechenwerk.jobs.models import ReservationRecord

H = timedelta(hours=1)


def _world(session: Session) -> dict[str, Any]:
    pi_a, pi_b = make_user(session), make_user(session)
    op = make_user(session, operator=True)
    a, b = make_project(session, pi=pi_a), make_project(session, pi=pi_b)
    make_award(session, a, gpu_hours=500.0)
    make_award(session, b, gpu_hours=500.0)
    out = {"a": a.slug, "b": b.slug, "pi_a": bearer(make_token(session, pi_a)),
           "pi_b": bearer(make_token(session, pi_b)), "op": bearer(make_token(session, op))}
    session.commit()
    return out


def _iso(t: datetime) -> str:
    return t.isoformat()


def _count(session: Session) -> int:
    session.rollback()
    return int(session.scalar(select(func.count()).select_from(ReservationRecord)) or 0)


def test_operator_creates_users_see_their_own(api_client: TestClient, session: Session,
                                              clock: FakeClock) -> None:
    w = _world(session)
    now = clock.now()
    hero = {"name": "hero-a", "start": _iso(now + H), "end": _iso(now + 3 * H),
            "projects": [w["a"], w["b"]], "gpus": 10}
    r = api_client.post("/api/v1/reservations", json=hero, headers=w["op"])
    assert r.status_code == 201, r.text
    assert r.json()["gpus"] == 10
    assert r.json()["nodes"] == [{"node": "node01", "gpus": 8}, {"node": "node02", "gpus": 2}]
    only_a = {"name": "a-only", "start": _iso(now + 4 * H), "end": _iso(now + 5 * H),
              "projects": [w["a"]], "nodes": ["node02"]}
    assert api_client.post("/api/v1/reservations", json=only_a,
                           headers=w["op"]).status_code == 201
    maint = {"name": "maint-1", "start": _iso(now + 6 * H), "end": _iso(now + 7 * H),
             "maintenance": True, "nodes": ["node01"]}
    assert api_client.post("/api/v1/reservations", json=maint,
                           headers=w["op"]).status_code == 201
    # users may not write
    assert api_client.post("/api/v1/reservations", json={**maint, "name": "x"},
                           headers=w["pi_a"]).status_code == 403
    assert api_client.delete("/api/v1/reservations/maint-1",
                             headers=w["pi_a"]).status_code == 403
    # operators see all, with who created them
    items = api_client.get("/api/v1/reservations", headers=w["op"]).json()["items"]
    assert [i["name"] for i in items] == ["hero-a", "a-only", "maint-1"]
    assert "created_by" in items[0]
    # B's PI: the shared one naming only B, and maintenance; nothing of A's own
    items = api_client.get("/api/v1/reservations", headers=w["pi_b"]).json()["items"]
    assert [(i["name"], i["projects"]) for i in items] == [("hero-a", [w["b"]]),
                                                          ("maint-1", [])]
    assert "created_by" not in items[0]
    assert w["a"] not in str(items)
    items = api_client.get("/api/v1/reservations", headers=w["pi_a"]).json()["items"]
    assert [i["name"] for i in items] == ["hero-a", "a-only", "maint-1"]
    # submission: only into a current reservation of one's project; the refusal does
    # not tell whether another project's reservation exists
    spec = {"name": "hero", "command": "true", "gpus": 2, "walltime": "30m"}
    ok = api_client.post("/api/v1/jobs", json={**spec, "project": w["a"],
                                               "reservation": "a-only"}, headers=w["pi_a"])
    assert ok.status_code == 201, ok.text
    theirs = api_client.post("/api/v1/jobs", json={**spec, "project": w["b"],
                                                   "reservation": "a-only"},
                             headers=w["pi_b"])
    none = api_client.post("/api/v1/jobs", json={**spec, "project": w["b"],
                                                 "reservation": "nope"}, headers=w["pi_b"])
    assert theirs.status_code == none.status_code == 422
    assert theirs.json()["detail"].replace("a-only", "X") == \
        none.json()["detail"].replace("nope", "X")
    assert api_client.delete("/api/v1/reservations/a-only", headers=w["op"]).status_code == 204
    assert api_client.delete("/api/v1/reservations/a-only", headers=w["op"]).status_code == 404


def test_bad_reservations_are_refused_and_nothing_is_written(
        api_client: TestClient, session: Session, clock: FakeClock) -> None:
    w = _world(session)
    now = clock.now()
    base = {"start": _iso(now + H), "end": _iso(now + 2 * H), "projects": [w["a"]]}
    assert api_client.post("/api/v1/reservations", json={**base, "name": "r1", "gpus": 12},
                           headers=w["op"]).status_code == 201
    bad: list[tuple[dict[str, Any], int, str]] = [
        ({"name": "r2", "gpus": 5,
          "start": _iso(now + 90 * timedelta(minutes=1))}, 422, "only 4 are not reserved"),
        ({"name": "r2", "nodes": ["node01"]}, 422, "already reserved"),
        ({"name": "r2", "gpus": 1, "end": _iso(now - H), "start": _iso(now - 2 * H)},
         422, "in the past"),
        ({"name": "r2", "gpus": 1, "end": _iso(now + H / 2)}, 422, "ends before it starts"),
        ({"name": "r2", "nodes": ["node77"]}, 422, "unknown node"),
        ({"name": "r2", "gpus": 1, "gpu_type": "H100"}, 422, "no nodes with GPU type"),
        ({"name": "r2", "gpus": 1, "projects": ["no-such-project"]}, 422, "unknown project"),
        ({"name": "r2", "gpus": 1, "projects": []}, 422, "or maintenance"),
        ({"name": "r2", "gpus": 1, "maintenance": True}, 422, "give no projects"),
        ({"name": "r1", "gpus": 1, "start": _iso(now + 3 * H), "end": _iso(now + 4 * H)},
         409, "exists"),
        ({"name": "bad name!", "gpus": 1}, 422, "invalid reservation name"),
        ({"name": "r2", "gpus": 0}, 422, ""),
    ]
    for change, status, text in bad:
        r = api_client.post("/api/v1/reservations", json={**base, **change}, headers=w["op"])
        assert r.status_code == status, (change, r.text)
        assert text in r.text, (change, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert _count(session) == 1
    # touching windows do not overlap: the whole inventory again right after
    after = {**base, "name": "r3", "gpus": 16, "start": _iso(now + 2 * H),
             "end": _iso(now + 3 * H)}
    assert api_client.post("/api/v1/reservations", json=after,
                           headers=w["op"]).status_code == 201


def test_scheduler_loop_plans_around_reservations(api_client: TestClient, session: Session,
                                                  clock: FakeClock) -> None:
    w = _world(session)
    now = clock.now()
    maint = {"name": "maint-n1", "start": _iso(now + H), "end": _iso(now + 2 * H),
             "maintenance": True, "nodes": ["node01"]}
    hero = {"name": "hero", "start": _iso(now + 1.5 * H), "end": _iso(now + 4 * H),
            "projects": [w["a"]], "nodes": ["node02"]}
    for body in (maint, hero):
        assert api_client.post("/api/v1/reservations", json=body,
                               headers=w["op"]).status_code == 201
    spec = {"command": "true", "gpus": 8, "walltime": "2h"}
    crossing = api_client.post("/api/v1/jobs", json={**spec, "name": "long",
                                                     "project": w["b"]},
                               headers=w["pi_b"]).json()["id"]
    inside = api_client.post("/api/v1/jobs", json={**spec, "name": "in", "project": w["a"],
                                                   "reservation": "hero"},
                             headers=w["pi_a"]).json()["id"]
    from rechenwerk.jobs.loop import SchedulerLoop

    runtime = api_client.app.state.runtime  # type: ignore[attr-defined]
    backend = FakeBackend()
    loop = SchedulerLoop(runtime.session_factory, backend, settings=runtime.settings,
                         clock=clock)
    loop.cycle()

    def job(jid: int, who: str) -> dict[str, Any]:
        out: dict[str, Any] = api_client.get(f"/api/v1/jobs/{jid}", headers=w[who]).json()
        return out

    long_job, in_job = job(crossing, "pi_b"), job(inside, "pi_a")
    assert long_job["state"] == "pending"
    assert long_job["reason_code"] == "reservation"
    assert "reserved for maintenance 'maint-n1' from 2026-01-01 01:00 UTC" in long_job["reason"]
    assert in_job["state"] == "pending"
    assert "waiting for reservation 'hero' to start at 2026-01-01 01:30 UTC" in in_job["reason"]
    clock.advance(5400)
    loop.cycle()
    in_job = job(inside, "pi_a")
    assert in_job["state"] == "starting" and in_job["placement"][0][0] == "node02"
    assert job(crossing, "pi_b")["state"] == "pending"
