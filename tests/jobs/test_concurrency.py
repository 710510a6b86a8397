"""Parallel clients (threads, each with its own session and transaction) can never
overdraw a balance nor create two jobs for one idempotency key. Runs on SQLite and on
PostgreSQL (where the project row lock in ``submit`` is what makes it safe)."""

from __future__ import annotations

import threading

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from factories import make_award, make_project, make_user
from rechenwerk.access.models import User
from rechenwerk.clock import FakeClock
from rechenwerk.config import Settings
from rechenwerk.errors import BudgetExceeded
from rechenwerk.jobs import service
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.specs import parse_spec
from rechenwerk.store.session import session_scope
from waiting import DEADLINE_S

SETTINGS = Settings(local_cluster="2x8:A100-80GB")
THREADS = 16


def _run_parallel(n: int, fn: object) -> list[object]:
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)  # type: ignore[operator]
        except Exception as exc:  # collected and asserted below
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)  # a failure guard; the threads end as soon as they are done
        assert not t.is_alive(), "a client thread did not finish"
    return results


def test_parallel_submissions_cannot_overdraw(session_factory: sessionmaker[Session],
                                              clock: FakeClock) -> None:
    with session_scope(session_factory) as s:
        pi = make_user(s)
        project = make_project(s, pi=pi)
        make_award(s, project, gpu_hours=10.0)  # room for exactly 5 jobs of 2 GPU-hours
        pi_id, slug = pi.id, project.slug

    def submit(i: int) -> int:
        with session_scope(session_factory) as s:
            user = s.get(User, pi_id)
            assert user is not None
            spec = parse_spec({"name": f"j{i}", "project": slug, "command": ["true"],
                               "gpus": 2, "walltime": "1h"})
            return service.submit(s, user, spec, clock=clock, settings=SETTINGS).id

    results = _run_parallel(THREADS, submit)
    ok = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    others = [r for r in results if not isinstance(r, int | BudgetExceeded)]
    assert not others, others
    assert len(ok) == 5 and len(refused) == THREADS - 5
    with session_scope(session_factory) as s:
        committed = s.scalar(select(func.sum(Job.gpus * Job.walltime_s)))
        assert committed == 5 * 2 * 3600


def test_parallel_same_idempotency_key_makes_one_job(session_factory: sessionmaker[Session],
                                                     clock: FakeClock) -> None:
    with session_scope(session_factory) as s:
        pi = make_user(s)
        project = make_project(s, pi=pi)
        make_award(s, project, gpu_hours=1000.0)
        pi_id, slug = pi.id, project.slug

    def submit(i: int) -> int:
        with session_scope(session_factory) as s:
            user = s.get(User, pi_id)
            assert user is not None
            spec = parse_spec({"name": "same", "project": slug, "command": ["true"],
                               "gpus": 1, "walltime": "1h", "idempotency_key": "retry-1"})
            return service.submit(s, user, spec, clock=clock, settings=SETTINGS).id

    results = _run_parallel(THREADS, submit)
    assert all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 1
    with session_scope(session_factory) as s:
        assert s.scalar(select(func.count(Job.id))) == 1
