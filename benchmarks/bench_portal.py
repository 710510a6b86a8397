"""Portal pages and reports with 100,000 jobs in PostgreSQL: server-side render time.

Creates a scratch database next to ``--pg-url`` (dropped at the end unless ``--keep``),
migrates it with Alembic, loads the demo centre, adds projects across the demo
organisations and bulk-inserts N jobs (COPY) spread over 90 days, with a settled usage
record for every job that ran. Then it logs in through the portal's form and times each
page in-process (FastAPI TestClient: routing, queries, Jinja2 and SVG rendering; no
network), best and median of ``--repeat`` runs after one warm-up.

The operator queue is timed three ways (``prepare_queue``): with the order this
process's scheduler loop published, with the one another process's loop stored, and
computed per request (no loop publishes); the benchmark runs no loop itself.

Usage: .venv/bin/python benchmarks/bench_portal.py [--jobs 100000] [--repeat 5]
       [--projects 16] [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
       [--keep]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text

from rechenwerk.access.awards import create_award
from rechenwerk.access.demo import demo_password, load_demo
from rechenwerk.access.models import AwardPeriod, Organization, Project, ProjectMembership, User
from rechenwerk.access.projects import create_project
from rechenwerk.access.users import create_user
from rechenwerk.store.migrate import upgrade
from rechenwerk.store.session import make_engine, make_session_factory, session_scope

DAYS = 90
STATES = (("completed", 0.80), ("failed", 0.08), ("cancelled", 0.04), ("timeout", 0.03),
          ("pending", 0.04), ("running", 0.01))


def create_database(admin_url: str) -> str:
    name = f"rw_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def seed(url: str, n_jobs: int, now: datetime, n_projects: int = 16) -> dict[str, float]:
    """Demo centre + ``n_projects`` more projects + ``n_jobs`` jobs and their usage."""
    engine = make_engine(url)
    factory = make_session_factory(engine)
    rng = random.Random(42)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with session_scope(factory) as s:
        load_demo(s, now=now)
        op = s.scalars(select(User).where(User.username == "operator")).one()
        orgs = list(s.scalars(select(Organization).order_by(Organization.id)))[1:]
        q0 = now - timedelta(days=DAYS + 1)
        for i in range(n_projects):
            org = orgs[i % len(orgs)]
            pi = create_user(s, op, username=f"pi{i:04d}", email=f"pi{i:04d}@bench.eu",
                             organization=org.id, now=now)
            p = create_project(s, pi, slug=f"bench-{i:04d}", title=f"Benchmark {i}",
                               now=now)
            if i % 2 == 0:
                create_award(s, op, project=p, gpu_hours=50_000.0, starts_at=q0,
                             gpu_type="A100-80GB", period_count=2, period_months=3,
                             now=now)
    timings["seed_centre_s"] = time.perf_counter() - t0

    with session_scope(factory) as s:
        projects = [(p.id, p.slug) for p in s.scalars(select(Project).order_by(Project.id))]
        members: dict[int, list[int]] = {}
        for pid, uid in s.execute(select(ProjectMembership.project_id,
                                         ProjectMembership.user_id)):
            members.setdefault(pid, []).append(uid)
        periods: dict[int, list[tuple[datetime, datetime, int]]] = {}
        for period in s.scalars(select(AwardPeriod)):
            periods.setdefault(period.award.project_id, []).append(
                (period.starts_at, period.ends_at, period.id))
    weights = [5.0 if slug == "nordstadt-climate" else 3.0 if slug == "nordlicht-llm" else 1.0
               for _, slug in projects]
    state_names = [s for s, _ in STATES]
    state_w = [w for _, w in STATES]

    t0 = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("SELECT coalesce(max(id), 0) FROM jobs")
        first_id = int(cur.fetchone()[0]) + 1
        from psycopg.types.json import Jsonb

        job_cols = ("id, project_id, user_id, award_period_id, name, spec, state, qos, "
                    "requested_qos, over_budget, gpus, gpu_type, walltime_s, reason_code, "
                    "reason, backend, attempt, exit_code, attained_gpu_s, "
                    "submitted_at, started_at, ended_at, updated_at")
        usage_rows = []
        with cur.copy(f"COPY jobs ({job_cols}) FROM STDIN") as copy:
            for k in range(n_jobs):
                jid = first_id + k
                (pid, slug), = rng.choices(projects, weights)
                uid = rng.choice(members[pid])
                gpus = rng.choice((1, 1, 2, 4, 8, 8, 16, 32, 64))
                wall = rng.choice((3600, 4 * 3600, 12 * 3600, 24 * 3600))
                submitted = now - timedelta(seconds=rng.uniform(0, DAYS * 86400))
                state = rng.choices(state_names, state_w)[0]
                started = ended = None
                reason_code = reason = None
                if state == "pending":
                    reason_code, reason = "resources", f"waiting for {gpus} GPUs"
                else:
                    started = submitted + timedelta(seconds=rng.expovariate(1 / 1800))
                    if state != "running":
                        ended = started + timedelta(seconds=rng.uniform(60, wall))
                    if started > now:
                        started = now - timedelta(seconds=30)
                    if ended is not None and ended > now:
                        ended = now - timedelta(seconds=1)
                period_id = None
                for s_at, e_at, per in periods.get(pid, ()):
                    if s_at <= submitted < e_at:
                        period_id = per
                copy.write_row((
                    jid, pid, uid, period_id, f"job-{jid}",
                    Jsonb({"name": f"job-{jid}", "project": slug, "gpus": gpus,
                           "walltime": wall, "command": ["python3", "train.py"]}),
                    state, "normal", "normal", False, gpus, "A100-80GB", wall, reason_code,
                    reason, "local", 1 if started else 0,
                    (0 if state == "completed" else 1) if ended else None, 0.0,
                    submitted, started, ended, ended or submitted))
                if ended is not None and started is not None:
                    usage_rows.append((jid, 1, pid, period_id, "A100-80GB", gpus, started,
                                       ended, gpus * (ended - started).total_seconds() / 3600,
                                       "local", ended))
        cur.execute("SELECT setval(pg_get_serial_sequence('jobs', 'id'), "
                    "(SELECT max(id) FROM jobs))")
        with cur.copy("COPY usage_records (job_id, attempt, project_id, award_period_id, "
                      "gpu_type, gpus, started_at, ended_at, gpu_hours, source, created_at) "
                      "FROM STDIN") as copy:
            for row in usage_rows:
                copy.write_row(row)
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    timings["copy_jobs_s"] = time.perf_counter() - t0
    timings["usage_records"] = float(len(usage_rows))
    engine.dispose()
    return timings


def prepare_queue(app: Any, what: str) -> None:
    """Where the queue pages get their order: computed per request ("computed"), the
    order the scheduler loop of this process published after its cycle (the default),
    or the one the leading loop of another process stored ("stored"). The benchmark runs
    no loop: the order comes from a snapshot of the seeded queue, as a cycle's would."""
    from rechenwerk.jobs.queue_order import QueueOrderBoard, core_view, store_order
    from rechenwerk.store.session import session_scope

    runtime = app.state.runtime
    now = runtime.clock.now()
    if "computed" in what:
        runtime.queue_orders = QueueOrderBoard()
        return
    if "stored" in what:  # this process runs no loop: an empty board, the stored row
        runtime.queue_orders = QueueOrderBoard()
        with session_scope(runtime.session_factory) as s:
            store_order(s, core_view(s, backend=runtime.backend, clock=runtime.clock,
                                     settings=runtime.settings), now)
        return
    if runtime.queue_orders.latest(now) is None:
        with runtime.session_factory() as s:
            view = core_view(s, backend=runtime.backend, clock=runtime.clock,
                             settings=runtime.settings)
        runtime.queue_orders.publish(view, now)


def login(client: Any, username: str) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, "no CSRF token on the login page"
    r = client.post("/login", data={"username": username, "password": demo_password(username),
                                    "csrf_token": token.group(1)}, follow_redirects=False)
    assert r.status_code == 303, r.text[:300]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--projects", type=int, default=16,
                    help="projects added to the demo's (1000: the directory at scale)")
    ap.add_argument("--pg-url", default=os.environ.get(
        "RECHENWERK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from rechenwerk.app import create_app
    from rechenwerk.config import Settings

    now = datetime.now(UTC).replace(microsecond=0)
    url = create_database(args.pg_url)
    try:
        t0 = time.perf_counter()
        upgrade(url)
        migrate_s = time.perf_counter() - t0
        seeded = seed(url, args.jobs, now, args.projects)
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            app = create_app(Settings(data_dir=tmp, database_url=url, scheduler_enabled=False,
                                      local_cluster="56x8:A100-80GB"))
            frm = (now - timedelta(days=DAYS)).date().isoformat()
            to = now.date().isoformat()
            pages = [
                ("operator", "/jobs", "job list, all 100k jobs, page 1"),
                ("operator", "/jobs?page=1000", "job list, page 1000 (offset 49,950)"),
                ("operator", "/jobs?state=pending", "job list filtered by state"),
                ("greta", "/jobs", "job list of a PI (her projects)"),
                ("greta", "/jobs?project=nordlicht-llm&state=completed",
                 "job list, project + state filter"),
                ("greta", "/", "PI dashboard: balance + burn-down chart"),
                ("operator", f"/reports?from={frm}&to={to}&by=project&period=week",
                 "reports page (4 tables), 90 days"),
                *[("operator", f"/reports/chart/{c}.svg?from={frm}&to={to}&by=project"
                   "&period=week", f"  chart alone: {c} (SVG)")
                  for c in ("usage", "utilisation", "waits", "energy")],
                ("operator", f"/reports?from={frm}&to={to}&by=kind&period=day",
                 "reports page, by org kind, daily"),
                ("operator", f"/reports/usage.csv?from={frm}&to={to}&by=call",
                 "usage CSV by call"),
                ("operator", "/ops/queue", "operator queue, no cycle yet (computed)"),
                ("operator", "/ops/queue", "operator queue, page 1 of 100 rows"),
                ("operator", "/ops/queue?page=3", "operator queue, page 3"),
                ("operator", "/ops/queue?q=job-12", "operator queue, search"),
                ("operator", "/ops/queue", "operator queue, order stored by the leader"),
                ("operator", "/jobs?sort=-gpus", "job list sorted by GPUs"),
                ("operator", "/jobs?q=job-12", "job list, name search"),
                ("operator", "/proposals?sort=-gpu_hours", "proposals sorted by GPU-hours"),
                ("operator", "/ops/audit", "audit log, page 1"),
                ("operator", "/ops/projects?sort=-used", "directory: projects by use"),
                ("operator", "/ops/projects?q=bench-09", "directory: project search"),
                ("operator", "/ops/users?sort=-projects", "directory: users by projects"),
                ("operator", "/ops/organizations?sort=-awarded",
                 "directory: organisations by award"),
            ]
            results = []
            clients: dict[str, Any] = {}
            with TestClient(app) as _:
                pass
            for user in ("operator", "greta"):
                c = TestClient(app)
                login(c, user)
                clients[user] = c
            from rechenwerk.web.pages.reports import _recent

            for user, path, what in pages:
                if path.startswith("/ops/queue"):
                    prepare_queue(app, what)
                c = clients[user]
                r = c.get(path)  # warm-up (imports, caches)
                assert r.status_code == 200, (path, r.status_code, r.text[:500])
                times = []
                for _ in range(args.repeat):
                    _recent._items.clear()  # cold: no report table from an earlier request
                    t = time.perf_counter()
                    r = c.get(path)
                    times.append(time.perf_counter() - t)
                    assert r.status_code == 200
                results.append((what, path, min(times), statistics.median(times),
                                len(r.content)))
            # As a browser loads it: the page, then the four charts it asks for (htmx on
            # load; one after another here, in parallel in a browser).
            page_path = f"/reports?from={frm}&to={to}&by=project&period=week"
            times = []
            for _ in range(args.repeat):
                _recent._items.clear()
                t = time.perf_counter()
                html = clients["operator"].get(page_path).text
                for lazy in re.findall(r'hx-get="(/reports/chart/[^"]+)"', html):
                    svg = clients["operator"].get(lazy.replace("&amp;", "&"))
                    assert svg.status_code == 200 and svg.text.startswith("<svg")
                times.append(time.perf_counter() - t)
            results.append(("reports page + its 4 charts, as loaded", page_path, min(times),
                            statistics.median(times), 0))
    finally:
        if not args.keep:
            drop_database(args.pg_url, url)
        else:
            print(f"kept database {url}")

    print(f"# bench_portal {now:%Y-%m-%d %H:%M} UTC on {platform.node()} "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores), "
          f"Python {platform.python_version()}, PostgreSQL; load average at the end "
          f"{os.getloadavg()[0]:.1f}")
    print(f"# {args.jobs:,} jobs, {int(seeded['usage_records']):,} usage records; "
          f"migrate {migrate_s:.1f} s, demo+projects {seeded['seed_centre_s']:.1f} s, "
          f"COPY {seeded['copy_jobs_s']:.1f} s")
    print(f"{'page':<44} {'best ms':>8} {'median ms':>10} {'KiB':>6}")
    worst = 0.0
    for what, _path, best, med, size in results:
        worst = max(worst, med)
        print(f"{what:<44} {best * 1000:8.0f} {med * 1000:10.0f} {size / 1024:6.0f}")
    print(f"# slowest median: {worst * 1000:.0f} ms ({'OK' if worst < 1.0 else 'OVER'} the 1 s "
          "budget)")
    print("# pages and charts are cold (no report table reused); the last line is the page "
          "followed by its charts, which reuse the page's tables for 10 s")


if __name__ == "__main__":
    main()
