"""One N-task job array through the REST API on PostgreSQL, beside N single submissions,
in one run; then the scheduler loop's cycle time with all those tasks pending.

A real server (``rechenwerk server --no-access-log``, scheduler loop off so only the
submission path is measured) on a fresh PostgreSQL database. In order:

1. N single submissions (one client, one kept-alive connection, one after another, each
   with its own idempotency key): what a sweep costs without arrays;
2. ONE submission of ``array: "0-(N-1)%10"``, timed end to end (request sent -> response
   read: validation, lock, one balance check, bulk insert of N tasks and their events,
   commit), then checked: N tasks stored, one ``job_arrays`` row;
3. a scheduler cycle (``SchedulerLoop.cycle`` in this process, in-memory backend over the
   emulated inventory, fifo) with the array's N tasks and the N single jobs pending: the
   first cycle (builds the snapshot caches, writes every reason) and the median of the
   next ``--cycles``.

    .venv/bin/python benchmarks/bench_job_array.py --tasks 10000     # the issue's size
    .venv/bin/python benchmarks/bench_job_array.py --tasks 500       # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from bench_jobs_api import PG_ADMIN, free_port, setup, tree_cpu_s
from bench_scheduler_cycle import InventoryBackend
from sqlalchemy import func, select, text

from rechenwerk.clock import FakeClock
from rechenwerk.config import Settings
from rechenwerk.execution.local import parse_local_cluster
from rechenwerk.jobs.loop import SchedulerLoop
from rechenwerk.jobs.models import Job, JobArray
from rechenwerk.store.session import make_engine, make_session_factory

SPEC = {"name": "sweep", "command": ["true"], "gpus": 1, "walltime": "1h"}


def start_server(url: str, port: int, max_tasks: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RECHENWERK_DATABASE_URL": url,
           "RECHENWERK_SCHEDULER_ENABLED": "false",
           "RECHENWERK_DATA_DIR": tempfile.mkdtemp(),
           "RECHENWERK_LOCAL_CLUSTER": "100x8:A100-80GB",
           "RECHENWERK_MAX_ARRAY_TASKS": str(max_tasks),
           "RECHENWERK_SECRET_KEY": secrets.token_hex(32)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rechenwerk.cli.main", "server", "--port", str(port),
         "--workers", "1", "--log-level", "warning", "--no-access-log"], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("server did not start")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=10_000,
                    help="tasks of the array, and as many single submissions")
    ap.add_argument("--cycles", type=int, default=5, help="measured scheduler cycles")
    args = ap.parse_args()
    n = args.tasks
    name = f"rw_bench_array_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", pool_size=1)
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    proc = None
    try:
        [(token, project)] = setup(url, 1)
        port = free_port()
        proc = start_server(url, port, max(n, 1))
        headers = {"Authorization": f"Bearer {token}"}
        doc = {**SPEC, "project": project}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers,
                          timeout=120) as client:
            for i in range(20):  # warm the server's caches and the connection
                client.post("/api/v1/jobs", json={**doc, "idempotency_key": f"warm-{i}"})
            cpu0 = tree_cpu_s(proc.pid)
            t0 = time.perf_counter()
            for i in range(n):
                r = client.post("/api/v1/jobs", json={**doc, "idempotency_key": f"one-{i}"})
                assert r.status_code == 201, r.text
            singles_s = time.perf_counter() - t0
            singles_cpu = tree_cpu_s(proc.pid) - cpu0
            cpu0 = tree_cpu_s(proc.pid)
            t0 = time.perf_counter()
            r = client.post("/api/v1/jobs", json={**doc, "array": f"0-{n - 1}%10",
                                                  "idempotency_key": "the-array"})
            array_s = time.perf_counter() - t0
            array_cpu = tree_cpu_s(proc.pid) - cpu0
            assert r.status_code == 201, r.text
            head = r.json()
            assert head["tasks"] == n
        engine = make_engine(url)
        with engine.connect() as c:
            stored = c.execute(select(func.count(Job.id))
                               .where(Job.array_job_id == head["id"])).scalar_one()
            arrays = c.execute(select(func.count(JobArray.id))).scalar_one()
        assert stored == n and arrays == 1, (stored, arrays)

        # The scheduler's cycles with all of it pending (the array's %10 holds back
        # all but 10 of its tasks; 800 GPUs start 790 of the single jobs at first).
        factory = make_session_factory(engine)
        clock = FakeClock(datetime.now(UTC))
        backend = InventoryBackend(parse_local_cluster("100x8:A100-80GB"))
        settings = Settings(data_dir=Path(tempfile.mkdtemp()), scheduler_policy="fifo")
        loop = SchedulerLoop(factory, backend, settings=settings, clock=clock)  # type: ignore[arg-type]
        first = loop.cycle()
        cycles = []
        for _ in range(args.cycles):
            clock.advance(1.0)
            cycles.append(loop.cycle().total_s)
        engine.dispose()
        out = {
            "database": "postgresql",
            "server": "rechenwerk server --workers 1 --no-access-log, scheduler loop off",
            "tasks": n,
            "single_submissions": {
                "count": n, "seconds": round(singles_s, 2),
                "per_s": round(n / singles_s, 1),
                "server_cpu_ms_each": round(singles_cpu / n * 1000, 2)},
            "one_array": {
                "tasks": n, "seconds_end_to_end": round(array_s, 3),
                "server_cpu_s": round(array_cpu, 3),
                "tasks_per_s": round(n / array_s, 1),
                "target_s": 2.0, "within_target": array_s < 2.0},
            "scheduler_cycle_with_tasks_pending": {
                "pending_jobs": 2 * n + 20,
                "first_cycle_s": round(first.total_s, 3),
                "first_cycle_started": first.started,
                "median_next_cycles_s": round(statistics.median(cycles), 4),
                "cycles": args.cycles},
            "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
                       f"python {platform.python_version()}",
            "load_average": round(os.getloadavg()[0], 1),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "benchmarks/bench_job_array.py " + " ".join(sys.argv[1:]),
        }
        print(json.dumps(out, indent=2))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(20)
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
