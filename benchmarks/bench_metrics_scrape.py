"""What one Prometheus scrape costs the database: the state gauges of
``rechenwerk.observability.collector`` (jobs by project and state, the queue, GPUs per
node, every active award's balance, the outbox) over a large centre.

The database gets ``--projects`` projects with an award each, ``--pending`` pending jobs,
``--ended`` ended ones and a running job on every GPU of ``--cluster``; the script then
reads the gauges ``--repeat`` times and prints the median and the slowest time.

    .venv/bin/python benchmarks/bench_metrics_scrape.py --pending 10000 --ended 200000
    .venv/bin/python benchmarks/bench_metrics_scrape.py --db-url postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from rechenwerk.access.models import Award, AwardPeriod, Organization, Project, User
from rechenwerk.clock import FakeClock
from rechenwerk.execution.local import parse_local_cluster
from rechenwerk.jobs.models import Job
from rechenwerk.observability.collector import StateCollector
from rechenwerk.store.session import make_engine, make_session_factory, session_scope
from rechenwerk.store.tables import metadata

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _fill(factory: object, args: argparse.Namespace) -> int:
    inventory = parse_local_cluster(args.cluster)
    with session_scope(factory) as s:  # type: ignore[arg-type]
        org = Organization(name="Bench", kind="university", country="DE",
                           created_at=NOW)
        s.add(org)
        s.flush()
        user = User(username="bench", email="b@example.eu", full_name="B",
                    organization_id=org.id, is_operator=False, is_reviewer=False,
                    is_active=True, created_at=NOW)
        s.add(user)
        s.flush()
        ids = []
        for i in range(args.projects):
            p = Project(slug=f"p{i}", title=f"P{i}", description="", organization_id=org.id,
                        pi_user_id=user.id, created_at=NOW)
            s.add(p)
            s.flush()
            a = Award(project_id=p.id, proposal_id=None, gpu_type="A100-80GB",
                      gpu_hours=1e6, starts_at=NOW - timedelta(days=10),
                      expires_at=NOW + timedelta(days=80), carry_over_limit_gpu_hours=0.0,
                      created_at=NOW)
            a.periods = [AwardPeriod(starts_at=NOW - timedelta(days=10),
                                     ends_at=NOW + timedelta(days=80), gpu_hours=1e6)]
            s.add(a)
            s.flush()
            ids.append((p.id, a.periods[0].id))
        base = dict(user_id=user.id, name="j", spec={}, qos="normal", requested_qos="normal",
                    over_budget=False, walltime_s=3600, attempt=0, attained_gpu_s=0.0,
                    submitted_at=NOW - timedelta(hours=1), updated_at=NOW)
        rows = []
        for i in range(args.pending):
            pid, per = ids[i % len(ids)]
            rows.append({**base, "project_id": pid, "award_period_id": per,
                         "state": "pending", "gpus": 1 + i % 8})
        for i in range(args.ended):
            pid, per = ids[i % len(ids)]
            rows.append({**base, "project_id": pid, "award_period_id": per,
                         "state": ("completed", "failed", "cancelled", "timeout")[i % 4],
                         "gpus": 1})
        k = 0
        for node in inventory:
            for g in range(node.gpus):
                pid, per = ids[k % len(ids)]
                k += 1
                rows.append({**base, "project_id": pid, "award_period_id": per,
                             "state": "running", "gpus": 1, "attempt": 1,
                             "placement": [[node.name, [g]]]})
        for start in range(0, len(rows), 5000):
            s.execute(insert(Job), rows[start:start + 5000])
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db-url", default="")
    ap.add_argument("--projects", type=int, default=200)
    ap.add_argument("--pending", type=int, default=10_000)
    ap.add_argument("--ended", type=int, default=200_000)
    ap.add_argument("--cluster", default="64x8:A100-80GB")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    url = args.db_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
    engine = make_engine(url)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    factory = make_session_factory(engine)
    t0 = time.perf_counter()
    n = _fill(factory, args)
    print(f"{n} jobs, {args.projects} projects, cluster {args.cluster} "
          f"(filled in {time.perf_counter() - t0:.1f} s)")
    inventory = parse_local_cluster(args.cluster)
    collector = StateCollector(factory, lambda: inventory, FakeClock(NOW))
    times = []
    series = 0
    for _ in range(args.repeat):
        t = time.perf_counter()
        families = list(collector.collect())
        times.append(time.perf_counter() - t)
        series = sum(len(f.samples) for f in families)
    print(f"{engine.dialect.name}: median {statistics.median(times) * 1000:.1f} ms, "
          f"max {max(times) * 1000:.1f} ms per scrape, {series} series "
          f"({platform.processor() or platform.machine()}, python {platform.python_version()})")
    if args.db_url:
        metadata.drop_all(engine)
    engine.dispose()


if __name__ == "__main__":
    main()
