"""Where the server's CPU goes on ``POST /api/v1/jobs`` (PostgreSQL), without a network.

Drives the ASGI application in this process (no uvicorn, no sockets) with the same
requests as ``bench_jobs_api.py`` and reports CPU time per submission (minimum and
median of several rounds: this VM's steal time makes single figures swing by 30%), then
the top functions by inclusive CPU time under yappi (all threads). Use it to find the
next cut; use ``bench_jobs_api.py`` for the published submissions/s.

    .venv/bin/python benchmarks/profile_submit.py --jobs 1000 [--repeat 5] [--top 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).parent))
from bench_jobs_api import PG_ADMIN, setup

from rechenwerk.store.session import make_engine


async def submit_many(app: Any, token: str, project: str, n: int, tag: str) -> None:
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode()),
               (b"content-type", b"application/json")]
    for k in range(n):
        body = json.dumps({"name": f"b{k}", "project": project,
                           "command": ["python3", "train.py"], "gpus": 1 + k % 8,
                           "walltime": "1h", "idempotency_key": f"{tag}-{k}"}).encode()
        scope = {"type": "http", "http_version": "1.1", "method": "POST",
                 "path": "/api/v1/jobs", "raw_path": b"/api/v1/jobs", "query_string": b"",
                 "headers": [*headers, (b"content-length", str(len(body)).encode())],
                 "scheme": "http", "server": ("bench", 80), "client": ("127.0.0.1", 1),
                 "root_path": ""}
        sent: list[dict[str, Any]] = []

        async def receive(body: bytes = body) -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        await app(scope, receive, send)
        if sent[0]["status"] != 201:
            raise RuntimeError(f"submission failed: {sent[0]['status']} {sent[1]['body']!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--repeat", type=int, default=5,
                        help="timed rounds; the minimum is the least disturbed figure")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()

    name = f"rw_prof_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        (token, project), = setup(url, 1)
        os.environ.update({"RECHENWERK_DATABASE_URL": url,
                           "RECHENWERK_SCHEDULER_ENABLED": "false",
                           "RECHENWERK_DATA_DIR": tempfile.mkdtemp(),
                           "RECHENWERK_LOCAL_CLUSTER": "100x8:A100-80GB"})
        from rechenwerk.app import create_app

        app = create_app()
        asyncio.run(submit_many(app, token, project, 200, "warm"))
        rounds = []
        for r in range(args.repeat):
            t0 = time.process_time()
            asyncio.run(submit_many(app, token, project, args.jobs, f"timed{r}"))
            rounds.append((time.process_time() - t0) * 1000 / args.jobs)
        print(json.dumps({"server_cpu_ms_per_submission_in_process": {
            "min": round(min(rounds), 3), "median": round(statistics.median(rounds), 3)},
            "jobs": args.jobs, "rounds": args.repeat}))
        if args.no_profile:
            return 0
        try:
            import yappi  # profiles every thread (the transaction runs in the pool)
        except ImportError:
            print("profile: pip install yappi (cProfile sees only the event-loop thread)")
            return 0
        yappi.set_clock_type("cpu")
        yappi.start()
        asyncio.run(submit_many(app, token, project, args.jobs, "profiled"))
        yappi.stop()
        print("per submission under the profiler (ms, inflated ~3-5x): total, own, calls")
        for st in sorted(yappi.get_func_stats(), key=lambda st: -st.ttot)[:args.top]:
            where = st.module.split("site-packages/")[-1].split("/src/")[-1]
            print(f"{1e3 * st.ttot / args.jobs:8.3f} {1e3 * st.tsub / args.jobs:8.3f} "
                  f"{st.ncall / args.jobs:6.1f}  {where}:{st.name}")
        app.state.runtime.engine.dispose()
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
