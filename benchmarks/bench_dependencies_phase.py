"""Cost of the scheduler loop's ``dependencies`` phase (jobs/dependencies.py).

A queue of ``--pending`` jobs without dependencies, ``--history`` ended jobs that once
waited for others (their job_dependencies rows stay), and ``--dependents`` pending jobs
that wait for a pending job (held back every cycle). The phase reads only jobs with
``dependency_wait`` set, so its cost follows the waiting dependents, not the history.

    .venv/bin/python benchmarks/bench_dependencies_phase.py          # SQLite file
    .venv/bin/python benchmarks/bench_dependencies_phase.py --pg     # PostgreSQL
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, text

from rechenwerk.access.models import Organization, Project, User
from rechenwerk.clock import FakeClock
from rechenwerk.jobs.dependencies import DependencyPhase
from rechenwerk.jobs.models import Job, JobDependency
from rechenwerk.store.session import make_engine, make_session_factory
from rechenwerk.store.tables import metadata

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CHUNK = 5000


def populate(url: str, history: int, pending: int, dependents: int) -> None:
    now = datetime.now(UTC)
    engine = make_engine(url)
    metadata.create_all(engine)
    base = {"project_id": 1, "user_id": 1, "name": "j", "spec": {"command": ["true"]},
            "qos": "normal", "requested_qos": "normal", "over_budget": False, "gpus": 1,
            "walltime_s": 600, "attempt": 0, "attained_gpu_s": 0.0, "submitted_at": now,
            "updated_at": now, "dependency_wait": False}
    # ids: 1..2h history (h upstream + h dependents, all ended), then the queue, then the
    # waiting dependents (each waits for one job of the queue).
    jobs = [{**base, "id": i, "state": "completed"} for i in range(1, 2 * history + 1)]
    q0, d0 = 2 * history, 2 * history + pending
    jobs += [{**base, "id": q0 + i, "state": "pending"} for i in range(1, pending + 1)]
    jobs += [{**base, "id": d0 + i, "state": "pending", "dependency_wait": True}
             for i in range(1, dependents + 1)]
    deps = [{"job_id": history + i, "kind": "after_ok", "depends_on_id": i}
            for i in range(1, history + 1)]
    deps += [{"job_id": d0 + i, "kind": "after_ok", "depends_on_id": q0 + 1 + i % pending}
             for i in range(1, dependents + 1)]
    with engine.begin() as c:
        c.execute(insert(Organization), [{"id": 1, "name": "Bench", "kind": "university",
                                          "country": "DE", "created_at": now}])
        c.execute(insert(User), [{"id": 1, "username": "bench", "email": "b@example.eu",
                                  "full_name": "", "organization_id": 1, "is_operator": True,
                                  "is_reviewer": False, "is_active": True,
                                  "created_at": now}])
        c.execute(insert(Project), [{"id": 1, "slug": "p1", "title": "P1", "description": "",
                                     "organization_id": 1, "pi_user_id": 1,
                                     "created_at": now}])
        for rows, model in ((jobs, Job), (deps, JobDependency)):
            for k in range(0, len(rows), CHUNK):
                c.execute(insert(model), rows[k:k + CHUNK])
        if engine.dialect.name == "postgresql":
            c.execute(text("ANALYZE"))
    engine.dispose()


def run(url: str, args: argparse.Namespace) -> dict[str, object]:
    populate(url, args.history, args.pending, args.dependents)
    engine = make_engine(url)
    phase = DependencyPhase(make_session_factory(engine), FakeClock(), kill_invalid=True,
                            backend_holds_dependencies=False)
    held = len(phase.run().held)  # warm
    times = []
    for _ in range(args.cycles):
        t0 = time.perf_counter()
        phase.run()
        times.append((time.perf_counter() - t0) * 1000)
    engine.dispose()
    return {"database": engine.dialect.name, "history": args.history,
            "pending": args.pending, "dependents": args.dependents, "held": held,
            "phase_ms_median": round(statistics.median(times), 2),
            "phase_ms_min": round(min(times), 2), "cycles": args.cycles}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg", action="store_true", help="PostgreSQL (127.0.0.1, db test)")
    ap.add_argument("--history", type=int, default=100_000)
    ap.add_argument("--pending", type=int, default=10_000)
    ap.add_argument("--dependents", type=int, nargs="+", default=[0, 1000])
    ap.add_argument("--cycles", type=int, default=20)
    args = ap.parse_args()
    out = []
    for dependents in args.dependents:
        one = argparse.Namespace(**{**vars(args), "dependents": dependents})
        if args.pg:
            admin = make_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            name = f"rw_bench_deps_{uuid.uuid4().hex[:8]}"
            with admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                out.append(run(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", one))
            finally:
                with admin.connect() as c:
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
        else:
            with tempfile.TemporaryDirectory() as tmp:
                out.append(run(f"sqlite:///{Path(tmp) / 'bench.db'}", one))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
