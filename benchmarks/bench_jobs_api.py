"""Job submissions per second through the REST API on PostgreSQL.

A real server (``rechenwerk server --workers W --no-access-log``: uvicorn with httptools
and uvloop; the scheduler loop off so only the submission path is measured) serves
``POST /api/v1/jobs``; several concurrent clients (one API token and project each) submit
jobs over kept-alive connections, every one with its own idempotency key, so each request
authenticates the token, checks membership and centre limits, locks the project row,
looks up the key, computes the live balance and inserts the job and its first event in
one transaction. Afterwards it checks that replaying keys returns the first jobs and that
nothing was lost or duplicated.

The client runs in this process, the server in its own processes; all share the
machine's cores, so besides submissions/s the script reports CPU time per submission of
the server processes, of PostgreSQL's backends for the benchmark database and of the
client: the server figure is the machine-independent cost of Rechenwerk's code.
``--client raw`` (default) is a minimal asyncio HTTP/1.1 client (a few microseconds of
CPU per request, like a load generator such as wrk); ``--client httpx`` uses
``httpx.AsyncClient`` (~1 ms of client CPU per request).

    .venv/bin/python benchmarks/bench_jobs_api.py --clients 8 --jobs 4000 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
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
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select, text

from rechenwerk.access.models import (
    Award,
    AwardPeriod,
    Organization,
    Project,
    ProjectMembership,
    User,
)
from rechenwerk.access.security import create_token
from rechenwerk.jobs.models import Job
from rechenwerk.store.session import make_engine, make_session_factory, session_scope
from rechenwerk.store.tables import metadata

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) of process ``root`` and all its descendants (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo.extend(p for p, (ppid, _) in stats.items() if ppid == pid)
    return total


def setup(url: str, clients: int) -> list[tuple[str, str]]:
    """One user, project (100,000 GPU-hours) and token per client."""
    engine = make_engine(url)
    metadata.create_all(engine)
    now = datetime.now(UTC)
    out = []
    with session_scope(make_session_factory(engine)) as s:
        org = Organization(name="Bench University", kind="university", country="DE",
                           created_at=now)
        s.add(org)
        s.flush()
        for i in range(clients):
            user = User(username=f"bench{i}", email=f"bench{i}@example.eu", full_name="",
                        organization_id=org.id, is_operator=False, is_reviewer=False,
                        is_active=True, created_at=now)
            s.add(user)
            s.flush()
            project = Project(slug=f"bench-{i}", title=f"Bench {i}", description="",
                              organization_id=org.id, pi_user_id=user.id, created_at=now)
            s.add(project)
            s.flush()
            s.add(ProjectMembership(project_id=project.id, user_id=user.id, role="pi",
                                    created_at=now))
            award = Award(project_id=project.id, gpu_type="A100-80GB", gpu_hours=1e5,
                          starts_at=now - timedelta(days=1),
                          expires_at=now + timedelta(days=90),
                          carry_over_limit_gpu_hours=0.0, created_at=now)
            award.periods = [AwardPeriod(starts_at=now - timedelta(days=1),
                                         ends_at=now + timedelta(days=90), gpu_hours=1e5)]
            s.add(award)
            _, secret = create_token(s, user, name="bench", now=now)
            out.append((secret, project.slug))
    engine.dispose()
    return out


def add_finished_jobs(url: str, total: int, *, old_index: bool) -> dict[str, object]:
    """``total`` completed jobs spread over the benchmark projects' periods (history the
    balance's committed-hours sum must skip), optionally with the index of before
    migration 0004 (``award_period_id`` alone)."""
    engine = make_engine(url)
    with engine.begin() as c:
        if old_index:
            c.execute(text("DROP INDEX ix_jobs_award_period_state"))
            c.execute(text("CREATE INDEX ix_jobs_award_period_id ON jobs (award_period_id)"))
        if total:
            c.execute(text(
                "INSERT INTO jobs (project_id, user_id, award_period_id, name, spec, state, "
                "qos, requested_qos, over_budget, gpus, walltime_s, attempt, attained_gpu_s, "
                "exit_code, submitted_at, started_at, ended_at, updated_at) "
                "SELECT p.id, p.pi_user_id, ap.id, 'old-' || g, '{}', 'completed', 'normal', "
                "'normal', false, 8, 3600, 1, 0.0, 0, now(), now(), now(), now() "
                "FROM generate_series(1, :n) g "
                "JOIN projects p ON p.id = 1 + (g % (SELECT count(*) FROM projects)) "
                "JOIN awards a ON a.project_id = p.id "
                "JOIN award_periods ap ON ap.award_id = a.id"), {"n": total})
        c.execute(text("ANALYZE jobs"))
    engine.dispose()
    return {"finished_jobs": total,
            "index": "award_period_id" if old_index else "(award_period_id, state)"}


def explain_balance(url: str) -> dict[str, object]:
    """EXPLAIN ANALYZE of the balance statement for the first project: the committed-hours
    sum's access path and rows read, execution time, and the median of 200 executions."""
    from rechenwerk.accounting.balance import balance_stmt

    engine = make_engine(url)
    with engine.connect() as c:
        c.execute(text("ANALYZE jobs"))
        sql = balance_stmt().params(project_id=1, at=datetime.now(UTC)).compile(
            dialect=engine.dialect, compile_kwargs={"literal_binds": True})
        plan = [r[0] for r in c.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")]
        times = []
        for _ in range(200):
            t0 = time.perf_counter()
            c.execute(balance_stmt(), {"project_id": 1, "at": datetime.now(UTC)}).all()
            times.append((time.perf_counter() - t0) * 1000)
    engine.dispose()
    committed = plan[next(i for i, line in enumerate(plan) if "SubPlan 2" in line):]
    return {"committed_sum_plan": [line.strip() for line in committed
                                   if "Scan" in line or "Rows Removed" in line
                                   or "Filter" in line or "Cond" in line][:6],
            "execution": next(line for line in plan if line.startswith("Execution Time")),
            "median_ms_of_200": round(statistics.median(times), 3)}


def backend_cpu_s(url: str) -> float:
    """CPU seconds of the PostgreSQL backends connected to the benchmark database."""
    engine = make_engine(PG_ADMIN, pool_size=1)
    name = url.rsplit("/", 1)[1]
    with engine.connect() as c:
        pids = [int(p) for p in c.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": name}
        ).scalars()]
    engine.dispose()
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


BASELINE_GET = {"me": "/api/v1/me", "health": "/api/v1/health"}


async def raw_client(base: str, token: str, project: str, n: int, tag: str,
                     latencies: list[float], ids: dict[str, int], get: str = "") -> None:
    """One kept-alive HTTP/1.1 connection, requests one after another; ``get``: time
    ``GET <get>`` instead of submissions (baselines)."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (f"POST /api/v1/jobs HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n")
    get_req = (f"GET {get} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"Authorization: Bearer {token}\r\n\r\n").encode()
    try:
        for k in range(n):
            key = f"{tag}-{project}-{k}"
            body = json.dumps({"name": f"b{k}", "project": project,
                               "command": ["python3", "train.py"], "gpus": 1 + k % 8,
                               "walltime": "1h", "idempotency_key": key}).encode()
            t0 = time.perf_counter()
            writer.write(get_req if get else
                         f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            status = int((await reader.readline()).split()[1])
            length = -1
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length < 0:
                raise RuntimeError("response without Content-Length")
            data = await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if get:
                if status != 200:
                    raise RuntimeError(f"GET {get} failed: {status} {data.decode()}")
                continue
            if status != 201:
                raise RuntimeError(f"submission failed: {status} {data.decode()}")
            ids[key] = json.loads(data)["id"]
    finally:
        writer.close()


async def client(base: str, token: str, project: str, n: int, tag: str,
                 latencies: list[float], ids: dict[str, int]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
        for k in range(n):
            key = f"{tag}-{project}-{k}"
            body = {"name": f"b{k}", "project": project, "command": ["python3", "train.py"],
                    "gpus": 1 + k % 8, "walltime": "1h", "idempotency_key": key}
            t0 = time.perf_counter()
            r = await http.post("/api/v1/jobs", json=body)
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 201:
                raise RuntimeError(f"submission failed: {r.status_code} {r.text}")
            ids[key] = r.json()["id"]


async def run_clients(base: str, creds: list[tuple[str, str]], per_client: int,
                      tag: str, kind: str = "raw",
                      get: str = "") -> tuple[float, list[float], dict[str, int]]:
    latencies: list[float] = []
    ids: dict[str, int] = {}
    t0 = time.perf_counter()
    if get or kind == "raw":
        await asyncio.gather(*(raw_client(base, tok, proj, per_client, tag, latencies, ids,
                                          get) for tok, proj in creds))
    else:
        await asyncio.gather(*(client(base, tok, proj, per_client, tag, latencies, ids)
                               for tok, proj in creds))
    return time.perf_counter() - t0, latencies, ids


async def replay(base: str, creds: list[tuple[str, str]], ids: dict[str, int]) -> int:
    """Resubmit 50 keys per client: each must return the first job (200), never a new one."""
    checked = 0
    for tok, proj in creds:
        async with httpx.AsyncClient(base_url=base, timeout=60,
                                     headers={"Authorization": f"Bearer {tok}"}) as http:
            for k in range(50):
                key = f"run-{proj}-{k}"
                body = {"name": f"b{k}", "project": proj, "command": ["python3", "train.py"],
                        "gpus": 1 + k % 8, "walltime": "1h", "idempotency_key": key}
                r = await http.post("/api/v1/jobs", json=body)
                assert r.status_code == 200 and r.json()["id"] == ids[key], r.text
                checked += 1
    return checked


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=4000, help="measured submissions in total")
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    ap.add_argument("--server", choices=("cli", "uvicorn"), default="cli",
                    help="cli: `rechenwerk server --workers W --no-access-log`; "
                         "uvicorn: plain uvicorn on create_app")
    ap.add_argument("--client", choices=("raw", "httpx"), default="raw",
                    help="raw: minimal asyncio HTTP/1.1 client; httpx: httpx.AsyncClient")
    ap.add_argument("--baseline", choices=sorted(BASELINE_GET), default=None,
                    help="also time N authenticated GETs of this endpoint (me, health) "
                         "with the same clients, for comparison")
    ap.add_argument("--finished-jobs", type=int, default=0,
                    help="first store this many completed jobs (spread over the projects' "
                         "periods) and print EXPLAIN ANALYZE of the balance statement")
    ap.add_argument("--old-index", action="store_true",
                    help="use the index of before migration 0004 (award_period_id alone) "
                         "instead of (award_period_id, state), for comparison")
    args = ap.parse_args()
    name = f"rw_bench_api_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", pool_size=1)
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    proc = None
    try:
        creds = setup(url, args.clients)
        history: dict[str, object] = {}
        if args.finished_jobs or args.old_index:
            history = add_finished_jobs(url, args.finished_jobs, old_index=args.old_index)
            history["balance_query_before_run"] = explain_balance(url)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "RECHENWERK_DATABASE_URL": url,
               "RECHENWERK_SCHEDULER_ENABLED": "false",
               "RECHENWERK_DATA_DIR": tempfile.mkdtemp(),
               "RECHENWERK_LOCAL_CLUSTER": "100x8:A100-80GB",
               "RECHENWERK_SECRET_KEY": secrets.token_hex(32)}
        if args.server == "cli":  # what operators run: rechenwerk server
            cmd = [sys.executable, "-m", "rechenwerk.cli.main", "server", "--port", str(port),
                   "--workers", str(args.workers), "--log-level", "warning",
                   "--no-access-log"]
        else:  # plain uvicorn on create_app (no gc.freeze after start-up)
            cmd = [sys.executable, "-m", "uvicorn", "rechenwerk.app:create_app",
                   "--factory", "--port", str(port), "--workers", str(args.workers),
                   "--log-level", "warning", "--no-access-log", "--http", "httptools",
                   "--loop", "uvloop"]
        proc = subprocess.Popen(cmd, env=env)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.2)
        per_client = max(1, args.jobs // args.clients)
        asyncio.run(run_clients(base, creds, max(1, 200 // args.clients), "warm",
                                args.client))
        cpu0, pg0, client0 = tree_cpu_s(proc.pid), backend_cpu_s(url), time.process_time()
        load0 = os.getloadavg()[0]
        wall, lat, ids = asyncio.run(run_clients(base, creds, per_client, "run", args.client))
        client_cpu = time.process_time() - client0
        server_cpu = tree_cpu_s(proc.pid) - cpu0
        pg_cpu = backend_cpu_s(url) - pg0
        load1 = os.getloadavg()[0]
        replayed = asyncio.run(replay(base, creds, ids))
        baseline: dict[str, object] = {}
        if args.baseline:
            path = BASELINE_GET[args.baseline]
            b_cpu0 = tree_cpu_s(proc.pid)
            b_wall, _, _ = asyncio.run(run_clients(base, creds, per_client, "get",
                                                   get=path))
            b_cpu = tree_cpu_s(proc.pid) - b_cpu0
            baseline = {f"GET {path} per_s": round(per_client * args.clients / b_wall, 1),
                        f"GET {path} server_cpu_ms": round(
                            b_cpu / (per_client * args.clients) * 1000, 2)}
        engine = make_engine(url)
        with engine.connect() as c:
            stored = c.execute(select(func.count(Job.id)).where(
                Job.idempotency_key.like("run-%"))).scalar_one()
        engine.dispose()
        n = per_client * args.clients
        assert stored == n, f"{stored} jobs stored for {n} submissions"
        if history:
            history["balance_query_after_run"] = explain_balance(url)
        lat_ms = sorted(x * 1000 for x in lat)
        out = {
            "database": "postgresql",
            "server": f"{args.server}: uvicorn (httptools, uvloop, no access log), "
                      f"{args.workers} worker process(es), scheduler loop off",
            "clients": args.clients,
            "submissions": n,
            "seconds": round(wall, 2),
            "submissions_per_s": round(n / wall, 1),
            "latency_ms_p50": round(statistics.median(lat_ms), 1),
            "latency_ms_p99": round(lat_ms[int(0.99 * (len(lat_ms) - 1))], 1),
            # CPU time per submission of the server processes (Rechenwerk's code), of the
            # PostgreSQL backends serving them and of this benchmark client
            "server_cpu_ms_per_submission": round(server_cpu / n * 1000, 2),
            "postgres_cpu_ms_per_submission": round(pg_cpu / n * 1000, 2),
            "client_cpu_ms_per_submission": round(client_cpu / n * 1000, 2),
            "client": args.client,
            "load_average_before_after": [round(load0, 1), round(load1, 1)],
            "idempotent_replays_checked": replayed,
            **baseline,
            **history,
            "jobs_stored": stored,
            "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
                       f"python {platform.python_version()}",
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "benchmarks/bench_jobs_api.py " + " ".join(sys.argv[1:]),
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
