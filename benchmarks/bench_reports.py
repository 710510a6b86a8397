"""Report computations over long ranges: every report at its largest allowed size, on
PostgreSQL with N settled runs spread over ten years.

Creates a scratch database next to ``--pg-url`` (dropped at the end unless ``--keep``),
migrates it, loads the demo centre and bulk-inserts ``--records`` usage records (COPY)
and as many jobs (a few still running) spread over ``--years`` years before now. Then it
times each report (best and median of ``--repeat`` runs after one warm-up):

- in-process, the report function on its own session (the computation and its queries);
- through the REST API (FastAPI TestClient: routing, auth, the report's worker thread,
  JSON), for the utilisation report per day over the whole span (3,653 periods for ten
  years, just under the 3,700-period limit).

Besides wall time it reports this process's CPU time (``*_cpu``): the Python side of a
report (and for the REST case the server's too), less disturbed by other load on the
machine than wall time; the database's share runs in the PostgreSQL server.

Run it at two sizes (e.g. ``--records 100000`` and ``--records 400000``): a computation
linear in runs + periods takes about 4x as long for 4x the runs, and the per-day report
over ten years costs little more than the per-month one. To compare two commits with
``ab.py``, give this script by its absolute path, so both sides run the same script on
their own ``src/``.

Usage: .venv/bin/python benchmarks/bench_reports.py [--records 200000] [--years 10]
       [--repeat 5] [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test] [--keep]
       [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bench_portal import create_database, drop_database
from sqlalchemy import select

from rechenwerk.access.demo import load_demo
from rechenwerk.access.models import Project, ProjectMembership, User
from rechenwerk.store.migrate import upgrade
from rechenwerk.store.session import make_engine, make_session_factory, session_scope


def seed(url: str, n: int, years: int, now: datetime) -> dict[str, float]:
    """Demo centre + ``n`` usage records and ``n`` jobs over ``years`` years before now."""
    engine = make_engine(url)
    factory = make_session_factory(engine)
    rng = random.Random(42)
    t0 = time.perf_counter()
    with session_scope(factory) as s:
        load_demo(s, now=now)
    with session_scope(factory) as s:
        projects = [p.id for p in s.scalars(select(Project).order_by(Project.id))]
        members: dict[int, list[int]] = {}
        for pid, uid in s.execute(select(ProjectMembership.project_id,
                                         ProjectMembership.user_id)):
            members.setdefault(pid, []).append(uid)
        projects = [p for p in projects if p in members]
    span_s = years * 365.25 * 86400
    raw = engine.raw_connection()
    running = 0
    try:
        cur = raw.cursor()
        cur.execute("SELECT coalesce(max(id), 0) FROM jobs")
        first_id = int(cur.fetchone()[0]) + 1
        from psycopg.types.json import Jsonb

        usage = []
        cols = ("id, project_id, user_id, name, spec, state, qos, requested_qos, "
                "over_budget, gpus, gpu_type, walltime_s, backend, attempt, attained_gpu_s, "
                "submitted_at, started_at, ended_at, updated_at")
        with cur.copy(f"COPY jobs ({cols}) FROM STDIN") as copy:
            for k in range(n):
                jid = first_id + k
                pid = rng.choice(projects)
                gpus = rng.choice((1, 1, 2, 4, 8, 8, 16, 32, 64))
                wall = rng.choice((3600, 4 * 3600, 12 * 3600, 24 * 3600, 72 * 3600))
                submitted = now - timedelta(seconds=rng.uniform(0, span_s))
                started = submitted + timedelta(seconds=rng.expovariate(1 / 1800))
                ended: datetime | None = started + timedelta(seconds=rng.uniform(60, wall))
                state = "completed"
                if ended is not None and ended > now:
                    state, ended, running = "running", None, running + 1
                    started = min(started, now - timedelta(seconds=30))
                copy.write_row((
                    jid, pid, rng.choice(members[pid]), f"job-{jid}", Jsonb({}), state,
                    "normal", "normal", False, gpus, "A100-80GB", wall, "local", 1, 0.0,
                    submitted, started, ended, ended or started))
                if ended is not None:
                    usage.append((jid, 1, pid, "A100-80GB", gpus, started, ended,
                                  gpus * (ended - started).total_seconds() / 3600, "local",
                                  ended))
        cur.execute("SELECT setval(pg_get_serial_sequence('jobs', 'id'), "
                    "(SELECT max(id) FROM jobs))")
        with cur.copy("COPY usage_records (job_id, attempt, project_id, gpu_type, gpus, "
                      "started_at, ended_at, gpu_hours, source, created_at) FROM STDIN"
                      ) as copy:
            for row in usage:
                copy.write_row(row)
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    engine.dispose()
    return {"seed_s": time.perf_counter() - t0, "usage_records": float(len(usage)),
            "running_jobs": float(running)}


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, Any]:
    """Wall time (best, median, every run) and this process's CPU time (median: all its
    threads, so for the REST case the server's event loop and worker thread too; the
    database's own work is in the PostgreSQL server, not here)."""
    fn()  # warm-up
    times, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"best_ms": min(times) * 1000, "median_ms": statistics.median(times) * 1000,
            "runs_ms": [x * 1000 for x in times],
            "cpu_ms": statistics.median(cpu) * 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pg-url", default=os.environ.get(
        "RECHENWERK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--keep", action="store_true", help="keep the scratch database")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from rechenwerk.access.security import create_token
    from rechenwerk.app import create_app
    from rechenwerk.config import Settings
    from rechenwerk.reports import service, utilisation
    from rechenwerk.reports.tables import Scope

    now = datetime.now(UTC).replace(microsecond=0)
    start = (now - timedelta(days=round(args.years * 365.25))).replace(
        hour=0, minute=0, second=0)
    century = now - timedelta(days=36_500)
    url = create_database(args.pg_url)
    results: dict[str, dict[str, Any]] = {}
    try:
        upgrade(url)
        seeded = seed(url, args.records, args.years, now)
        engine = make_engine(url)
        factory = make_session_factory(engine)
        everything = Scope(None)
        cases: list[tuple[str, Callable[[Any], Any]]] = [
            ("utilisation per day, whole span", lambda s: utilisation.utilisation_report(
                s, scope=everything, start=start, end=now, total_gpus=448, now=now,
                bucket="day")),
            ("utilisation per week, whole span", lambda s: utilisation.utilisation_report(
                s, scope=everything, start=start, end=now, total_gpus=448, now=now,
                bucket="week")),
            ("utilisation per month, 100 years", lambda s: utilisation.utilisation_report(
                s, scope=everything, start=century, end=now, total_gpus=448, now=now,
                bucket="month")),
            ("usage by day, whole span", lambda s: service.usage_report(
                s, scope=everything, by="period", bucket="day", start=start, end=now)),
            ("usage by project, whole span", lambda s: service.usage_report(
                s, scope=everything, by="project", start=start, end=now)),
            ("waits by qos-size, whole span", lambda s: service.waits_report(
                s, scope=everything, start=start, end=now)),
            ("energy per project, whole span", lambda s: service.energy_report(
                s, scope=everything, start=start, end=now)),
        ]
        for what, make in cases:
            def run(make: Callable[[Any], Any] = make) -> Any:
                with session_scope(factory) as s:
                    return make(s)
            rows = len(run().rows)
            results[what] = {**timed(run, args.repeat), "rows": rows}
        with session_scope(factory) as s:
            op = s.scalars(select(User).where(User.username == "operator")).one()
            _, secret = create_token(s, op, name="bench", now=now)
        engine.dispose()
        with tempfile.TemporaryDirectory() as tmp:
            app = create_app(Settings(data_dir=tmp, database_url=url, scheduler_enabled=False,
                                      local_cluster="56x8:A100-80GB"))
            with TestClient(app) as client:
                params = {"from": start.isoformat(), "to": now.isoformat(), "period": "day"}
                headers = {"Authorization": f"Bearer {secret}"}

                def get() -> Any:
                    r = client.get("/api/v1/reports/utilisation", params=params,
                                   headers=headers)
                    assert r.status_code == 200, r.text[:500]
                    return r

                results["REST utilisation per day, whole span"] = {
                    **timed(get, args.repeat), "rows": len(get().json()["rows"])}
    finally:
        if not args.keep:
            drop_database(args.pg_url, url)
        else:
            print(f"kept database {url}")

    print(f"# bench_reports {now:%Y-%m-%d %H:%M} UTC on {platform.node()} "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores), "
          f"Python {platform.python_version()}, PostgreSQL; load average at the end "
          f"{os.getloadavg()[0]:.1f}")
    print(f"# {int(seeded['usage_records']):,} usage records and {args.records:,} jobs "
          f"({int(seeded['running_jobs'])} running) over {args.years} years; seeded in "
          f"{seeded['seed_s']:.1f} s")
    print(f"{'report':<40} {'rows':>6} {'best ms':>8} {'median ms':>10} {'CPU ms':>7}")
    for what, r in results.items():
        print(f"{what:<40} {r['rows']:6d} {r['best_ms']:8.1f} {r['median_ms']:10.1f} "
              f"{r['cpu_ms']:7.1f}")
    out: dict[str, Any] = {"records": args.records, "years": args.years}
    for what, r in results.items():
        key = re.sub(r"\W+", "_", what)
        out[key], out[key + "_cpu"] = r["median_ms"], r["cpu_ms"]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, **out}, f, indent=2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
