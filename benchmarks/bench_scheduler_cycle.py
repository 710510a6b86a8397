"""Scheduler-loop cycle time with 10,000 pending jobs on 1,000 emulated nodes.

One cycle of the server's loop = poll the backend for every running job, snapshot the
database (nodes, running allocations, pending jobs, fair-share usage), the scheduling
core's decision, and applying it (starts, reasons of waiting jobs). The backend is an
in-memory stand-in with the emulated inventory, so the figure is Rechenwerk's own cost.

    .venv/bin/python benchmarks/bench_scheduler_cycle.py                 # SQLite file
    .venv/bin/python benchmarks/bench_scheduler_cycle.py --pg            # PostgreSQL
    .venv/bin/python benchmarks/bench_scheduler_cycle.py --nodes 1000 --pending 10000 \
        --policy multifactor+easy-backfill --cycles 10

The cluster is full (1,000 running 8-GPU jobs hold every GPU) so every cycle examines the
whole queue; one running job ends before each measured cycle, so each cycle starts a job
and rewrites the reasons that changed.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text

from rechenwerk.access.models import (
    Award,
    AwardPeriod,
    Organization,
    Project,
    ProjectMembership,
    User,
)
from rechenwerk.clock import FakeClock
from rechenwerk.config import Settings
from rechenwerk.execution.base import (
    BackendCapabilities,
    BackendJobState,
    BackendJobStatus,
    LaunchRequest,
    ReconcileReport,
)
from rechenwerk.execution.local import NodeInventory, parse_local_cluster
from rechenwerk.jobs.loop import SchedulerLoop
from rechenwerk.jobs.models import Job
from rechenwerk.store.session import make_engine, make_session_factory
from rechenwerk.store.tables import metadata

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


class InventoryBackend:
    name = "bench"
    capabilities = BackendCapabilities(schedules_itself=False, multi_node=True,
                                       graceful_preemption=True, imports_foreign_jobs=False)

    def __init__(self, nodes: Sequence[NodeInventory]) -> None:
        self.nodes = tuple(nodes)
        self.status: dict[str, BackendJobStatus] = {}

    def inventory(self) -> Sequence[NodeInventory]:
        return self.nodes

    def submit(self, request: LaunchRequest) -> str:
        h = f"{request.job_id}.{request.attempt}"
        self.status[h] = BackendJobStatus(h, BackendJobState.RUNNING,
                                          started_at=datetime.now(UTC))
        return h

    def cancel(self, handle: str) -> None: ...

    def preempt(self, handle: str) -> None: ...

    def poll(self, handles: Sequence[str]) -> Mapping[str, BackendJobStatus]:
        return {h: self.status[h] for h in handles if h in self.status}

    def reconcile(self, handles: Sequence[str]) -> ReconcileReport:
        return ReconcileReport(known=self.poll(handles))

    def close(self) -> None: ...


def populate(url: str, n_nodes: int, n_pending: int, n_projects: int, now: datetime) -> None:
    engine = make_engine(url)
    metadata.create_all(engine)
    with engine.begin() as c:
        c.execute(insert(Organization), [{"id": 1, "name": "Bench", "kind": "university",
                                          "country": "DE", "created_at": now}])
        c.execute(insert(User), [{"id": 1, "username": "bench", "email": "b@example.eu",
                                  "full_name": "", "organization_id": 1, "is_operator": True,
                                  "is_reviewer": False, "is_active": True,
                                  "created_at": now}])
        c.execute(insert(Project), [{"id": p, "slug": f"p{p}", "title": f"P{p}",
                                     "description": "", "organization_id": 1,
                                     "pi_user_id": 1, "created_at": now}
                                    for p in range(1, n_projects + 1)])
        c.execute(insert(ProjectMembership), [{"project_id": p, "user_id": 1, "role": "pi",
                                               "created_at": now}
                                              for p in range(1, n_projects + 1)])
        c.execute(insert(Award), [{"id": p, "project_id": p, "gpu_type": "A100-80GB",
                                   "gpu_hours": 1e7, "starts_at": now - timedelta(days=1),
                                   "expires_at": now + timedelta(days=90),
                                   "carry_over_limit_gpu_hours": 0.0, "created_at": now}
                                  for p in range(1, n_projects + 1)])
        c.execute(insert(AwardPeriod), [{"award_id": p, "starts_at": now - timedelta(days=1),
                                         "ends_at": now + timedelta(days=90),
                                         "gpu_hours": 1e7}
                                        for p in range(1, n_projects + 1)])
        width = max(2, len(str(n_nodes)))
        base = {"user_id": 1, "spec": {"command": ["true"]}, "requested_qos": "normal",
                "over_budget": False, "nodes": None, "gpus_per_node": None,
                "gpu_type": None, "attempt": 0, "attained_gpu_s": 0.0,
                "award_period_id": None}
        running = [
            {**base, "id": i + 1, "project_id": i % n_projects + 1, "name": f"r{i}",
             "state": "running", "qos": "normal", "gpus": 8, "walltime_s": 3600 + 7 * i,
             "attempt": 1, "backend": "bench", "backend_handle": f"{i + 1}.1",
             "placement": [[f"node{i + 1:0{width}d}", list(range(8))]],
             "submitted_at": now - timedelta(hours=1), "started_at": now - timedelta(
                 minutes=30), "updated_at": now}
            for i in range(n_nodes)
        ]
        c.execute(insert(Job), running)
        sizes = (1, 1, 2, 4, 8, 8, 16, 32, 64)
        pending = [
            {**base, "id": n_nodes + k + 1, "project_id": k % n_projects + 1,
             "name": f"q{k}", "state": "pending", "qos": ("normal", "high", "low")[k % 3],
             "gpus": sizes[k % len(sizes)], "walltime_s": 600 + (k * 37) % 86_000,
             "submitted_at": now - timedelta(seconds=n_pending - k), "updated_at": now}
            for k in range(n_pending)
        ]
        for i in range(0, len(pending), 2000):
            c.execute(insert(Job), pending[i:i + 2000])
        if engine.dialect.name == "postgresql":
            c.execute(text("SELECT setval(pg_get_serial_sequence('jobs', 'id'), "
                           "(SELECT max(id) FROM jobs))"))
    engine.dispose()


def run(url: str, args: argparse.Namespace) -> dict[str, object]:
    now = datetime.now(UTC)
    populate(url, args.nodes, args.pending, args.projects, now)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    clock = FakeClock(now)
    nodes = parse_local_cluster(f"{args.nodes}x8:A100-80GB")
    backend = InventoryBackend(nodes)
    for i in range(args.nodes):
        h = f"{i + 1}.1"
        backend.status[h] = BackendJobStatus(h, BackendJobState.RUNNING,
                                             started_at=now - timedelta(minutes=30))
    settings = Settings(data_dir=Path(tempfile.mkdtemp()), scheduler_policy=args.policy)
    loop = SchedulerLoop(factory, backend, settings=settings, clock=clock)  # type: ignore[arg-type]
    first = loop.cycle()  # writes 10,000 reasons once
    results = []
    cpu: list[float] = []
    gc_ms: list[float] = []
    gc_gen2: list[int] = []
    gc_t0 = [0.0]
    gc_acc = [0.0, 0]

    def _gc_cb(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_t0[0] = time.perf_counter()
        else:
            gc_acc[0] += time.perf_counter() - gc_t0[0]
            gc_acc[1] += info["generation"] == 2

    gc.callbacks.append(_gc_cb)
    for k in range(args.cycles):
        h = f"{k + 1}.1"  # one running job ends: each cycle has real work to apply
        backend.status[h] = BackendJobStatus(h, BackendJobState.COMPLETED,
                                             started_at=now - timedelta(minutes=30),
                                             ended_at=clock.now(), exit_code=0)
        clock.advance(1.0)
        c0 = time.process_time()
        gc_acc[:] = [0.0, 0]
        results.append(loop.cycle())
        cpu.append((time.process_time() - c0) * 1000)
        gc_ms.append(gc_acc[0] * 1000)
        gc_gen2.append(int(gc_acc[1]))
    gc.callbacks.remove(_gc_cb)
    engine.dispose()
    totals = [r.total_s * 1000 for r in results]
    return {
        "database": engine.dialect.name,
        "policy": args.policy,
        "nodes": args.nodes,
        "gpus": args.nodes * 8,
        "pending": args.pending,
        "running": args.nodes,
        "first_cycle_ms": round(first.total_s * 1000, 1),
        "first_cycle_reasons_written": first.reasons_written,
        "cycle_ms_median": round(statistics.median(totals), 1),
        "cycle_ms_max": round(max(totals), 1),
        # CPU time of this process only (robust on a shared machine; excludes the
        # PostgreSQL server's own CPU time)
        "cycle_cpu_ms_median": round(statistics.median(cpu), 1),
        # time in Python's garbage collector during the measured cycles
        "gc_ms_median": round(statistics.median(gc_ms), 1),
        "gc_ms_mean": round(statistics.fmean(gc_ms), 1),
        "gc_ms_max": round(max(gc_ms), 1),
        "gc_full_collections": sum(gc_gen2),
        "poll_ms_median": round(statistics.median(r.poll_s * 1000 for r in results), 1),
        "snapshot_ms_median": round(statistics.median(r.snapshot_s * 1000 for r in results), 1),
        "decide_ms_median": round(statistics.median(r.decide_s * 1000 for r in results), 1),
        "apply_ms_median": round(statistics.median(r.apply_s * 1000 for r in results), 1),
        # phases of their own since the loop was split into named phases (before: poll
        # included forward_cancels, apply included reasons)
        **{f"{p}_ms_median": round(statistics.median(
            getattr(r, p + "_s", 0.0) * 1000 for r in results), 1)
           for p in ("forward_cancels", "reasons")},
        "started_per_cycle": statistics.median(r.started for r in results),
        "reasons_written_median": statistics.median(r.reasons_written for r in results),
        "cycles": args.cycles,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pending", type=int, default=10_000)
    ap.add_argument("--projects", type=int, default=50)
    ap.add_argument("--policy", default="multifactor+easy-backfill")
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--pg", action="store_true", help="PostgreSQL instead of a SQLite file")
    args = ap.parse_args()
    if args.pg:
        name = f"rw_bench_cycle_{uuid.uuid4().hex[:8]}"
        admin = make_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", pool_size=1)
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            out = run(PG_ADMIN.rsplit("/", 1)[0] + "/" + name, args)
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    else:
        with tempfile.TemporaryDirectory() as d:
            out = run(f"sqlite:///{d}/bench.db", args)
    out["machine"] = f"{platform.node()} {platform.machine()} python {platform.python_version()}"
    out["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out["command"] = "benchmarks/bench_scheduler_cycle.py " + " ".join(sys.argv[1:])
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
