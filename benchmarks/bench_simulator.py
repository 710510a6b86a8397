"""Simulator throughput: the full Philly trace (82,247 jobs) on 56x8 and 50x8 GPUs under
every policy. Prints a Markdown table (for docs/benchmarks.md) and optionally JSON.

    .venv/bin/python benchmarks/bench_simulator.py [--trace ../shared/traces/philly.csv]
        [--cluster 56x8 --cluster 50x8] [--policy fifo ...] [--limit N] [--json OUT]

Jobs/s = jobs / wall seconds of the replay (event loop and scheduling; reading the trace
and computing the metrics are timed separately). CPU seconds are reported too: on a
shared machine they show what the code costs when it is not waiting for a core.
The same replay through the path users run (``rechenwerk simulate --json`` processes,
A/B against a base tree, scaling, 1,000,000 jobs): ``benchmarks/bench_simulate_cli.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from rechenwerk.scheduling.policies import policy_names
from rechenwerk.simulation.cluster import load_cluster
from rechenwerk.simulation.engine import run_simulation
from rechenwerk.simulation.traces import read_trace

# the targets: fifo; every backfill and multifactor variant (quota and las have none)
TARGETS: dict[str, int | None] = {"fifo": 50_000, "quota": None, "las": None}
DEFAULT_TARGET = 5_000


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trace", default=str(here.parent / "shared" / "traces" / "philly.csv"))
    ap.add_argument("--cluster", action="append")
    ap.add_argument("--policy", action="append")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--json")
    args = ap.parse_args()
    clusters = args.cluster or ["56x8", "50x8"]
    policies = args.policy or policy_names()

    t0 = time.perf_counter()
    trace = read_trace(args.trace, "philly")
    jobs = trace.jobs[: args.limit] if args.limit else trace.jobs
    read_s = time.perf_counter() - t0
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    print(
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: nproc={nproc}, "
        f"{_cpu_model()}; Python {platform.python_version()}; load before: {_load()}"
    )
    print(
        f"trace: {args.trace} ({len(jobs):,} jobs, read in {read_s:.2f} s); "
        "walltime estimate = exact run time\n"
    )
    print(
        "| cluster | policy | wall s | jobs/s (wall) | CPU s | jobs/s (CPU) | target | "
        "metrics s | avg wait h | p95 wait h | util | Jain |"
    )
    print("|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    rows = []
    for c in clusters:
        spec = load_cluster(c)
        for p in policies:
            r = run_simulation(jobs, spec, p)
            m = r.metrics
            target = TARGETS.get(r.policy, DEFAULT_TARGET)
            cpu_jps = len(jobs) / r.cpu_seconds if r.cpu_seconds > 0 else float("inf")
            if target is None:
                ok = "none"
            elif r.jobs_per_second >= target:
                ok = f">= {target:,} met"
            elif cpu_jps >= target:
                ok = f">= {target:,} met on CPU time"
            else:
                ok = f">= {target:,} missed by {100 * (1 - cpu_jps / target):.0f} %"
            print(
                f"| {c} | {r.policy} | {r.wall_seconds:.2f} | {r.jobs_per_second:,.0f} | "
                f"{r.cpu_seconds:.2f} | {cpu_jps:,.0f} | {ok} | "
                f"{r.metrics_seconds:.2f} | {m.avg_wait_s / 3600:,.1f} | "
                f"{m.p95_wait_s / 3600:,.1f} | {m.utilization:.3f} | {m.jain_fairness:.3f} |",
                flush=True,
            )
            rows.append(
                {
                    "cluster": c,
                    "policy": r.policy,
                    "jobs": len(jobs),
                    "wall_seconds": r.wall_seconds,
                    "cpu_seconds": r.cpu_seconds,
                    "jobs_per_second": r.jobs_per_second,
                    "jobs_per_cpu_second": cpu_jps,
                    "metrics_seconds": r.metrics_seconds,
                    "preemptions": r.preemptions,
                    **{
                        k: getattr(m, k)
                        for k in (
                            "avg_wait_s",
                            "p95_wait_s",
                            "utilization",
                            "jain_fairness",
                            "makespan_s",
                        )
                    },
                }
            )
    print(f"\nload after: {_load()}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
