"""Advance reservations on the local executor with real processes (SQLite and
PostgreSQL): a job of a member project that names the reservation runs on its GPUs, a
job of another project never starts there, and a job whose walltime would run into a
maintenance window waits with the reason in words."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from factories import make_award, make_project, make_user
from rechenwerk.access.models import User
from rechenwerk.clock import WallClock
from rechenwerk.config import Settings
from rechenwerk.execution.base import NodeInventory
from rechenwerk.execution.local import LocalExecutor
from rechenwerk.jobs import reservations, service
from rechenwerk.jobs.loop import SchedulerLoop
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.specs import parse_spec
from rechenwerk.store.session import session_scope
from waiting import wait_for

NODES = [NodeInventory("node01", 2, "A100-80GB"), NodeInventory("node02", 2, "A100-80GB")]


def test_reservations_with_real_processes(session_factory: sessionmaker[Session],
                                          tmp_path: Path) -> None:
    clock = WallClock()
    settings = Settings(data_dir=tmp_path / "var", local_cluster="2x2:A100-80GB")
    now = clock.now()
    with session_scope(session_factory) as s:
        pis = [make_user(s), make_user(s)]
        projects = [make_project(s, pi=pi) for pi in pis]
        for p in projects:
            make_award(s, p, gpu_hours=100, starts_at=now - timedelta(days=1))
        ids = [(pi.id, p.slug) for pi, p in zip(pis, projects, strict=True)]
        reservations.create(s, reservations.ReservationRequest(
            "hero", now, now + timedelta(hours=2), projects=(projects[0].slug,),
            nodes=("node01",)), inventory=NODES, now=now, by="op")
        reservations.create(s, reservations.ReservationRequest(
            "fw-update", now + timedelta(minutes=20), now + timedelta(hours=1),
            maintenance=True, nodes=("node02",)), inventory=NODES, now=now, by="op")

    def submit(who: int, **doc: Any) -> int:
        uid, slug = ids[who]
        with session_scope(session_factory) as s:
            user = s.get(User, uid)
            assert user is not None
            spec = parse_spec({"project": slug, "gpus": 2, "command": "true", **doc})
            return service.submit(s, user, spec, clock=clock, settings=settings).id

    def job(jid: int) -> Job:
        with session_scope(session_factory) as s:
            j = s.get(Job, jid)
            assert j is not None
            s.expunge(j)
            return j

    backend = LocalExecutor(settings.data_dir, cluster=settings.local_cluster)
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock)
    inside = submit(0, name="hero-run", walltime="10m", reservation="hero")
    crossing = submit(1, name="long", walltime="30m")  # node02's window is in 20 min
    short = submit(1, name="short", walltime="10m")
    wait_for(lambda: (loop.cycle(), job(inside).state == "completed"
                      and job(short).state == "completed")[1],
             "the reservation job and the short job to complete", step=0.1)
    assert job(inside).placement == [["node01", [0, 1]]]
    assert job(short).placement == [["node02", [0, 1]]]  # node01 is held for 'hero'
    long_job = job(crossing)
    assert long_job.state == "pending" and long_job.placement is None
    assert long_job.reason_code == "reservation"
    # node01 is reserved now, node02 from the maintenance window on
    assert "reserved by reservation 'hero' until" in (long_job.reason or "")
    # hero gone, but node01 gets a maintenance window too: the job still must not start
    with session_scope(session_factory) as s:
        reservations.delete(s, "hero")
        reservations.create(s, reservations.ReservationRequest(
            "fw-update-2", now + timedelta(minutes=25), now + timedelta(hours=1),
            maintenance=True, nodes=("node01",)), inventory=NODES, now=now, by="op")
    loop.cycle()
    long_job = job(crossing)
    assert long_job.state == "pending" and long_job.reason_code == "reservation"
    when = (now + timedelta(minutes=20)).strftime("%Y-%m-%d %H:%M UTC")
    assert f"reserved for maintenance 'fw-update' from {when}" in (long_job.reason or "")
    assert "its walltime would run into it" in (long_job.reason or "")
    with session_scope(session_factory) as s:
        reservations.delete(s, "fw-update-2")
    wait_for(lambda: (loop.cycle(), job(crossing).state == "completed")[1],
             "the long job to run once 'hero' is gone (on node01)", step=0.1)
    assert job(crossing).placement == [["node01", [0, 1]]]
