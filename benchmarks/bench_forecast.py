"""Start-time forecasts: what one costs, and how close it comes to the real start.

    .venv/bin/python benchmarks/bench_forecast.py cost [--nodes 1000] [--pending 10000]
        [--policy multifactor+easy-backfill] [--repeat 3]
    .venv/bin/python benchmarks/bench_forecast.py accuracy [--trace ../shared/traces/philly.csv
        --format philly] [--cluster 50x8] [--limit 3000] [--every 5] [--walltime-factor 2]
        [--walltime-slack 1.2,3.0] [--history]

cost: a full cluster (``--nodes`` x 8 GPUs busy with jobs of a generated LLM-era
workload, started at random points of their walltime) and ``--pending`` waiting jobs;
times ``scheduling.forecast.forecast_starts`` (what the live forecast companion runs every
``RECHENWERK_FORECAST_INTERVAL_S``), min/median/max over ``--repeat`` runs.

accuracy: replays a trace through the policy's scheduler (jobs run their real duration;
the walltime estimate is ``--walltime-factor`` x duration where the trace has none, as
``rechenwerk simulate``); at every ``--every``-th submission it forecasts the new job's
start from the state at that moment, as the live service would, and compares it with the
start the replay then gives it: median and p90 of the absolute error, the same relative to
the mean wait, and the share of forecasts that were late (the job started earlier).
``--history``: forecasts use each project's median run/walltime of its last 100 finished
jobs (what the live companion does), else every job runs to its walltime.
"""

from __future__ import annotations

import argparse
import heapq
import math
import platform
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from rechenwerk.scheduling.forecast import forecast_starts
from rechenwerk.scheduling.model import Node, PendingJob, ProjectInfo, RunningJob, Snapshot
from rechenwerk.scheduling.policies import make_policy
from rechenwerk.simulation.cluster import load_cluster
from rechenwerk.simulation.traces import read_trace
from rechenwerk.simulation.traces.generator import generate_llm_workload

NOW = 1_000_000_000.0


def _header(args: argparse.Namespace) -> None:
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{platform.python_implementation()} {platform.python_version()}, args {vars(args)}")


def _cost(args: argparse.Namespace) -> None:
    gpn = 8
    nodes = tuple(Node(f"n{i}", gpn) for i in range(args.nodes))
    total = args.nodes * gpn
    trace = generate_llm_workload(seed=7, days=60, total_gpus=total, gpus_per_node=gpn)
    jobs = list(trace.jobs)
    rng = random.Random(11)
    free = {n.name: gpn for n in nodes}
    running: list[RunningJob] = []
    it = iter(jobs)
    whole = [n.name for n in nodes]
    # fill the cluster: small jobs on one node's free GPUs, large ones on whole nodes
    for tj in it:
        wall = tj.walltime_s or tj.duration_s
        start = NOW - rng.uniform(0, wall)
        if tj.gpus <= gpn:
            name = next((n for n, f in free.items() if f >= tj.gpus), None)
            if name is None:
                break
            first = gpn - free[name]
            placement = ((name, tuple(range(first, first + tj.gpus))),)
            free[name] -= tj.gpus
        else:
            k = math.ceil(tj.gpus / gpn)
            idle = [n for n in whole if free[n] == gpn][:k]
            if len(idle) < k:
                continue
            placement = tuple((n, tuple(range(gpn))) for n in idle)
            for n in idle:
                free[n] = 0
        running.append(RunningJob(f"r{len(running)}", tj.project, len(placement) * gpn
                                  if tj.gpus > gpn else tj.gpus, placement, start, wall))
        if sum(free.values()) < total * 0.02:
            break
    pending = []
    for i, tj in enumerate(jobs[len(running):len(running) + args.pending]):
        pending.append(PendingJob(f"p{i}", tj.project, tj.gpus,
                                  walltime_s=tj.walltime_s or tj.duration_s,
                                  submit_time=NOW - 3600 + i * 3600 / args.pending))
    projects = {j.project: ProjectInfo(share=1.0) for j in pending}
    snap = Snapshot(now=NOW, nodes=nodes, running=tuple(running), pending=tuple(pending),
                    projects=projects)
    policy = make_policy(args.policy)
    busy = total - sum(free.values())
    print(f"{args.nodes} nodes x {gpn} GPUs, {len(running)} running jobs on {busy} GPUs, "
          f"{len(pending)} pending, policy {args.policy}")
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        f = forecast_starts(policy, snap)
        times.append(time.perf_counter() - t0)
    print(f"forecast: {len(f.starts)} of {len(pending)} placed within 30 days, "
          f"{f.cycles} cycles; seconds min {min(times):.2f} median "
          f"{statistics.median(times):.2f} max {max(times):.2f} ({args.repeat} runs)")


def _accuracy(args: argparse.Namespace) -> None:
    trace = read_trace(args.trace, args.format)
    jobs = list(trace.jobs)[:args.limit]
    nodes = load_cluster(args.cluster).nodes
    cap = max(n.gpus for n in nodes) * len(nodes)
    jobs = [j for j in jobs if j.gpus <= cap]
    policy = make_policy(args.policy)
    t0 = jobs[0].submit_time
    sched = policy.scheduler(nodes, {}, t0)
    slack = random.Random(5)
    lo, hi = args.walltime_slack or (args.walltime_factor, args.walltime_factor)
    wall = {j.job_id: j.walltime_s or j.duration_s * slack.uniform(lo, hi) for j in jobs}
    project = {j.job_id: j.project for j in jobs}
    history: dict[str, list[float]] = {}  # by project: run / walltime of finished jobs
    run = {j.job_id: min(j.duration_s, wall[j.job_id]) for j in jobs}
    ends: list[tuple[float, str]] = []
    forecast: dict[str, float | None] = {}
    actual: dict[str, float] = {}
    submit = {j.job_id: j.submit_time for j in jobs}
    i, t, wake = 0, t0, math.inf
    started = time.perf_counter()
    while i < len(jobs) or ends or sched.pending:
        nxt = min(jobs[i].submit_time if i < len(jobs) else math.inf,
                  ends[0][0] if ends else math.inf, wake)
        if math.isinf(nxt):
            break
        t = nxt
        while ends and ends[0][0] <= t:
            jid = heapq.heappop(ends)[1]
            sched.finish(jid, t)
            history.setdefault(project[jid], []).append(run[jid] / wall[jid])
        while i < len(jobs) and jobs[i].submit_time <= t:
            tj = jobs[i]
            job = PendingJob(tj.job_id, tj.project, tj.gpus, walltime_s=wall[tj.job_id],
                             submit_time=tj.submit_time)
            sched.submit(job)
            if i % args.every == 0:
                usage = getattr(sched, "_usage", {})  # multifactor's decayed usage
                projects = {p: ProjectInfo(share=1.0, usage_gpu_s=u) for p, u in usage.items()}
                snap = Snapshot(now=t, nodes=nodes, running=tuple(sched.running.values()),
                                pending=tuple(sched.pending.values()), projects=projects)
                frac = ({p: statistics.median(h[-100:]) for p, h in history.items()
                         if len(h) >= 5} if args.history else None)
                forecast[tj.job_id] = forecast_starts(policy, snap, run_fraction=frac
                                                      ).start_of(tj.job_id)
            i += 1
        res = sched.schedule(t)
        for pj, _rj in res.starts:
            actual[pj.job_id] = t
            heapq.heappush(ends, (t + run[pj.job_id], pj.job_id))
        wake = res.wake_at if res.wake_at is not None and res.wake_at > t else math.inf
    seconds = time.perf_counter() - started
    pairs = [(f, actual[j], j) for j, f in forecast.items() if f is not None and j in actual]
    errs = sorted(abs(f - a) for f, a, _ in pairs)
    waits = [actual[j] - submit[j] for j in actual]
    mean_wait = statistics.fmean(waits) if waits else 0.0
    late = sum(1 for f, a, _ in pairs if f > a + 1e-6)
    none = sum(1 for f in forecast.values() if f is None)

    def q(p: float) -> float:
        return errs[min(len(errs) - 1, int(p * len(errs)))] if errs else math.nan

    h = 3600.0
    est = (f"U({lo:g}, {hi:g})" if lo != hi else f"{lo:g}") + " x run time"
    how = ("each project's median run/walltime of its last 100 finished jobs"
           if args.history else "jobs end at their walltime")
    print(f"{len(jobs)} jobs of {args.trace} on {args.cluster}, policy {args.policy}, "
          f"walltime = {est}; forecast: {how}; {len(forecast)} forecasts "
          f"({none} beyond the horizon), replay with forecasts {seconds:.1f} s")
    print(f"mean wait {mean_wait / h:.2f} h; start-time error median {q(0.5) / h:.2f} h "
          f"({q(0.5) / mean_wait:.0%} of the mean wait), p90 {q(0.9) / h:.2f} h "
          f"({q(0.9) / mean_wait:.0%}); exact (within 1 s) "
          f"{sum(1 for e in errs if e < 1) / max(len(errs), 1):.0%}; "
          f"late (started earlier than forecast) {late / max(len(pairs), 1):.0%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("cost")
    c.add_argument("--nodes", type=int, default=1000)
    c.add_argument("--pending", type=int, default=10_000)
    c.add_argument("--policy", default="multifactor+easy-backfill")
    c.add_argument("--repeat", type=int, default=3)
    a = sub.add_parser("accuracy")
    a.add_argument("--trace", default=str(Path(__file__).parents[2] / "shared" / "traces"
                                          / "philly.csv"))
    a.add_argument("--format", default="philly")
    a.add_argument("--cluster", default="50x8")
    a.add_argument("--policy", default="multifactor+easy-backfill")
    a.add_argument("--limit", type=int, default=3000)
    a.add_argument("--every", type=int, default=5)
    a.add_argument("--walltime-factor", type=float, default=2.0)
    a.add_argument("--walltime-slack", type=lambda v: tuple(float(x) for x in v.split(",")),
                   help="LO,HI: each job's walltime = run time x U(LO, HI) (seeded)")
    a.add_argument("--history", action="store_true",
                   help="forecast with each project's run/walltime history")
    args = ap.parse_args()
    _header(args)
    (_cost if args.what == "cost" else _accuracy)(args)


if __name__ == "__main__":
    main()
