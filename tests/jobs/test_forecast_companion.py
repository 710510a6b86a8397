"""The scheduler loop's forecast companion: expected starts stored per pending job, from
the live snapshot and each project's run-time history; only changes are written."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from jobs_fake_backend import FakeBackend
from sqlalchemy.orm import Session

from factories import bearer, make_award, make_project, make_token, make_user
from rechenwerk.clock import FakeClock, ensure_utc
from rechenwerk.jobs.forecasts import HISTORY_MIN_JOBS, run_fractions
from rechenwerk.jobs.models import Job

SPEC = {"name": "train", "command": "true", "gpus": 8, "walltime": "1h"}


def _setup(api_client: TestClient, session: Session, clock: FakeClock) -> dict[str, Any]:
    pi = make_user(session)
    project = make_project(session, pi=pi)
    make_award(session, project, gpu_hours=500.0)
    session.commit()
    headers = bearer(make_token(session, pi))
    ids = [api_client.post("/api/v1/jobs", json={**SPEC, "project": project.slug,
                                                 "name": f"j{i}"}, headers=headers
                           ).json()["id"] for i in range(3)]
    from rechenwerk.jobs.loop import SchedulerLoop

    runtime = api_client.app.state.runtime  # type: ignore[attr-defined]
    loop = SchedulerLoop(runtime.session_factory, FakeBackend(), settings=runtime.settings,
                         clock=clock)
    loop.cycle()  # two 8-GPU jobs start on the 16 GPUs; the third waits
    return {"loop": loop, "ids": ids, "headers": headers, "project": project,
            "factory": runtime.session_factory}


def test_the_waiting_job_gets_the_first_end_as_its_start(
        api_client: TestClient, session: Session, clock: FakeClock) -> None:
    w = _setup(api_client, session, clock)
    loop, ids = w["loop"], w["ids"]
    with w["factory"]() as s:
        snap, _ = loop.snapshots.build(s)
    stats = loop.forecasts.run(snap)
    assert stats.jobs == 1 and stats.placed == 1 and stats.written == 1
    waiting = api_client.get(f"/api/v1/jobs/{ids[2]}", headers=w["headers"]).json()
    first = api_client.get(f"/api/v1/jobs/{ids[0]}", headers=w["headers"]).json()
    assert waiting["state"] == "pending" and first["state"] in ("starting", "running")
    started = ensure_utc(session.get(Job, ids[0]).updated_at)  # type: ignore[union-attr]
    session.rollback()
    from datetime import datetime

    expected = datetime.fromisoformat(waiting["expected_start"])
    assert abs(expected - (started + timedelta(hours=1))) < timedelta(seconds=1)
    # Nothing moved: nothing is written again.
    assert loop.forecasts.run(snap).written == 0
    # Running jobs have no forecast in the API, whatever is stored.
    assert first["expected_start"] is None


def test_project_history_shortens_the_forecast(
        api_client: TestClient, session: Session, clock: FakeClock) -> None:
    w = _setup(api_client, session, clock)
    loop, project = w["loop"], w["project"]
    now = clock.now()
    # The project's last jobs ran a quarter of their walltime (one was cancelled early:
    # it says nothing about run times and is left out).
    for k in range(HISTORY_MIN_JOBS + 1):
        state = "cancelled" if k == 0 else "completed"
        session.add(Job(project_id=project.id, user_id=project.pi_user_id, name=f"h{k}",
                        spec={}, state=state, qos="normal", requested_qos="normal",
                        over_budget=False, gpus=1, walltime_s=4000, attempt=1,
                        attained_gpu_s=0.0, submitted_at=now - timedelta(hours=3),
                        started_at=now - timedelta(hours=2),
                        ended_at=now - timedelta(hours=2) + timedelta(seconds=1000
                                                                      if k else 10),
                        updated_at=now))
    session.commit()
    assert run_fractions(session, now) == {project.slug: 0.25}
    session.rollback()
    with w["factory"]() as s:
        snap, _ = loop.snapshots.build(s)
    assert loop.forecasts.run(snap).written == 1
    waiting = session.get(Job, w["ids"][2])
    started = ensure_utc(session.get(Job, w["ids"][0]).updated_at)  # type: ignore[union-attr]
    assert waiting is not None and waiting.expected_start_at is not None
    assert abs(ensure_utc(waiting.expected_start_at) - (started + timedelta(minutes=15))
               ) < timedelta(seconds=1)


def test_a_costly_forecast_is_made_less_often() -> None:
    from rechenwerk.jobs.forecasts import ForecastCompanion, ForecastStats
    from rechenwerk.scheduling.policies import make_policy

    c = ForecastCompanion(None, make_policy("fifo"), interval_s=60.0,  # type: ignore[arg-type]
                          horizon_s=3600.0)
    assert c.next_due(100.0) == 160.0  # nothing measured yet: the interval
    c.last = ForecastStats(jobs=10_000, placed=10_000, written=0, cycles=9000, seconds=12.0)
    assert c.next_due(100.0) == 160.0  # 12 s of 60: 20%, the share allowed
    c.last = ForecastStats(jobs=50_000, placed=50_000, written=0, cycles=9000, seconds=30.0)
    assert c.next_due(100.0) == 250.0  # 30 s: every 150 s
