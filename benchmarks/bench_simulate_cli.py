"""Simulator speed through the path users run: ``rechenwerk simulate --json`` subprocesses.

    .venv/bin/python benchmarks/bench_simulate_cli.py [--trace ../shared/traces/philly.csv]
        [--cluster 50x8] [--policy fifo ...] [--rounds 3] [--base /tmp/speed-base]
        [--scaling] [--million] [--json OUT]

Per policy and round, one ``rechenwerk simulate --trace ... --json`` process per tree
(``--base DIR``: also a base checkout's ``src``, interleaved round by round with this
tree, so both see the same load). Reported (median of the rounds): the replay seconds
the CLI prints (its *wall* column, = ``wall_seconds`` of the JSON), jobs/s, the replay's
CPU seconds (``cpu_seconds``, JSON of this tree only), the whole process's CPU seconds
and max RSS (``os.wait4``), and whether the metrics equal the base's.

``--scaling`` generates traces with ``rechenwerk trace generate`` and fits cost = c * x^k
(least squares on log-log, replay CPU seconds) for jobs x {1/4, 1/2, 1} on a fixed
cluster and for cluster size x {1/4, 1/2, 1} at a fixed number of jobs (the same offered
load: the trace of a smaller cluster covers proportionally more days).
``--million``: a generated 1,000,000-job trace on 1,250 x 8 = 10,000 GPUs under
multifactor+easy-backfill (replay seconds, process CPU, peak RSS).
Prints Markdown tables (docs/benchmarks.md) with the date, machine and load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

HERE = Path(__file__).resolve().parents[1]
POLICIES = [
    "fifo",
    "easy-backfill",
    "conservative-backfill",
    "multifactor",
    "multifactor+easy-backfill",
    "multifactor+conservative-backfill",
    "quota",
    "las",
]
# issue 13 item 5: fifo; las; every backfill and multifactor variant (quota has none)
TARGETS: dict[str, int | None] = {"fifo": 100_000, "las": 10_000, "quota": None}
DEFAULT_TARGET = 20_000
DECISION_KEYS = ("avg_wait_s", "avg_jct_s", "utilization", "jain_fairness", "preemptions",
                 "p95_wait_s", "makespan_s", "per_project")
err = Console(stderr=True)


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _rechenwerk(src: Path, args: list[str], out: Path | None = None) -> dict[str, float]:
    """Run ``rechenwerk ARGS`` with ``src`` first on the path; process wall, CPU, RSS."""
    env = dict(os.environ, PYTHONPATH=str(src), COLUMNS="200")
    code = "import sys; from rechenwerk.cli.main import main; sys.argv[0] = 'rechenwerk'; main()"
    t0 = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        p = subprocess.Popen([sys.executable, "-c", code, *args], env=env,
                             stdout=devnull if out is None else out.open("w"),
                             stderr=subprocess.PIPE)
        assert p.stderr is not None
        stderr = p.stderr.read()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"rechenwerk {' '.join(args)} failed ({p.returncode}):\n"
                         + stderr.decode(errors="replace")[-2000:])
    return {"process_wall_s": wall, "process_cpu_s": ru.ru_utime + ru.ru_stime,
            "max_rss_mib": ru.ru_maxrss / 1024}


def simulate(src: Path, trace: str, fmt: str, cluster: str, policy: str,
             limit: int | None, tmp: Path) -> dict[str, Any]:
    out = tmp / f"{abs(hash((str(src), policy, cluster, trace)))}.json"
    args = ["simulate", "--trace", trace, "--format", fmt, "--cluster", cluster,
            "--policy", policy, "--json", str(out)]
    if limit:
        args += ["--limit", str(limit)]
    proc = _rechenwerk(src, args)
    data = json.loads(out.read_text())
    run = data["policies"][policy]
    return {**proc, "replay_s": run["wall_seconds"], "replay_cpu_s": run.get("cpu_seconds"),
            "jobs": run["jobs"], "decisions": {k: run.get(k) for k in DECISION_KEYS}}


def _med(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def _target(policy: str, jps: float) -> str:
    t = TARGETS.get(policy, DEFAULT_TARGET)
    if t is None:
        return "none"
    return f">= {t:,} met" if jps >= t else f">= {t:,} missed ({jps / t:.2f}x)"


def bench_policies(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    trees = [("this", HERE / "src")] + ([("base", Path(args.base) / "src")] if args.base else [])
    policies = args.policy or POLICIES
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    total = args.rounds * len(policies) * len(trees)
    with Progress(TextColumn("{task.description:<48}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err) as bar:
        task = bar.add_task("rechenwerk simulate", total=total)
        for rnd in range(args.rounds):
            for p in policies:
                # alternate which tree goes first, so neither always runs after the other
                order = trees if rnd % 2 == 0 else trees[::-1]
                for label, src in order:
                    bar.update(task, description=f"round {rnd + 1}: {p} ({label})")
                    r = simulate(src, args.trace, args.format, args.cluster, p, args.limit, tmp)
                    runs.setdefault((p, label), []).append(r)
                    bar.advance(task)
    print(f"\nTrace {args.trace} ({args.format}), cluster {args.cluster}, "
          f"{args.rounds} rounds (median), trees interleaved; load after: {_load()}\n")
    print("| policy | tree | replay s (CLI) | jobs/s (CLI) | replay CPU s | jobs/s (CPU) | "
          "process CPU s | max RSS MiB | target (CLI jobs/s) | metrics = base |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---|")
    out = []
    for p in policies:
        for label, _src in trees:
            rows = runs[(p, label)]
            jobs = rows[0]["jobs"]
            replay = _med(rows, "replay_s") or math.nan
            cpu = _med(rows, "replay_cpu_s")
            same = "-"
            if args.base and label == "this":
                same = "yes" if all(r["decisions"] == runs[(p, "base")][0]["decisions"]
                                    for r in rows) else "**NO**"
            cpu_txt = f"{cpu:.2f}" if cpu is not None else "n/a"
            cpu_jps = f"{jobs / cpu:,.0f}" if cpu else "n/a"
            print(f"| {p} | {label} | {replay:.2f} | {jobs / replay:,.0f} | {cpu_txt} | "
                  f"{cpu_jps} | {_med(rows, 'process_cpu_s'):.2f} | "
                  f"{_med(rows, 'max_rss_mib'):.0f} | "
                  f"{_target(p, jobs / replay) if label == 'this' else '-'} | {same} |")
            out.append({"policy": p, "tree": label, "jobs": jobs, "rounds": rows})
    if args.base:
        print("\n| policy | replay s this / base (per round) | process CPU this / base |")
        print("|---|---|---:|")
        for p in policies:
            a, b = runs[(p, "this")], runs[(p, "base")]
            per = ", ".join(f"{x['replay_s'] / y['replay_s']:.2f}" for x, y in zip(a, b,
                                                                                     strict=True))
            cpu_ratio = (_med(a, "process_cpu_s") or 0) / (_med(b, "process_cpu_s") or 1)
            print(f"| {p} | {per} | {cpu_ratio:.2f} |")
    return out


def _generate(src: Path, out: Path, days: float, gpus: int) -> None:
    if not out.exists():
        _rechenwerk(src, ["trace", "generate", "--out", str(out), "--days", f"{days:g}",
                          "--gpus", str(gpus)])


def _fit(xs: list[float], ys: list[float]) -> float:
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum(
        (a - mx) ** 2 for a in lx)


def bench_scaling(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    src = HERE / "src"
    nodes, days = args.scale_nodes, args.scale_days
    policies = args.policy or ["fifo", "multifactor+easy-backfill"]
    fractions = (0.25, 0.5, 1.0)
    result: dict[str, Any] = {}
    with Progress(TextColumn("{task.description:<48}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err) as bar:
        task = bar.add_task("scaling", total=len(policies) * 6)
        full = tmp / f"gen_{nodes}x8_{days:g}d.csv"
        bar.update(task, description=f"trace generate {nodes}x8, {days:g} days")
        _generate(src, full, days, nodes * 8)
        n_full = sum(1 for ln in full.open() if ln and not ln.startswith("#")) - 1
        for p in policies:
            rows: dict[str, list[tuple[float, float]]] = {"jobs": [], "cluster": []}
            for f in fractions:  # jobs x f on the full cluster
                bar.update(task, description=f"{p}: jobs x {f:g}")
                r = simulate(src, str(full), "native", f"{nodes}x8", p,
                             int(n_full * f), tmp)
                rows["jobs"].append((r["jobs"], r["replay_cpu_s"] or r["replay_s"]))
                bar.advance(task)
            n_fixed = int(n_full * fractions[0])
            for f in fractions:  # cluster x f, the same number of jobs at the same load
                sub = max(1, round(nodes * f))
                bar.update(task, description=f"{p}: cluster x {f:g} ({sub}x8)")
                tr = tmp / f"gen_{sub}x8_{days * fractions[0] / f:g}d.csv"
                _generate(src, tr, days * fractions[0] / f, sub * 8)
                r = simulate(src, str(tr), "native", f"{sub}x8", p, n_fixed, tmp)
                rows["cluster"].append((sub * 8, r["replay_cpu_s"] or r["replay_s"]))
                bar.advance(task)
            result[p] = {
                k: {"points": v, "exponent": _fit([x for x, _ in v], [y for _, y in v])}
                for k, v in rows.items()
            }
    print(f"\nScaling: generated traces (`rechenwerk trace generate`, load 0.9), "
          f"full cluster {nodes}x8 = {nodes * 8:,} GPUs, {n_full:,} jobs over {days:g} days; "
          f"cost = replay CPU s; load after: {_load()}\n")
    print("| policy | axis | points (size: CPU s) | exponent k (cost ~ size^k) |")
    print("|---|---|---|---:|")
    for p, axes in result.items():
        for axis, d in axes.items():
            pts = ", ".join(f"{x:,.0f}: {y:.2f}" for x, y in d["points"])
            print(f"| {p} | {axis} | {pts} | {d['exponent']:.2f} |")
    return result


def bench_million(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    src = HERE / "src"
    trace = tmp / "gen_1250x8_million.csv"
    err.print("generating the 1,000,000-job trace on 10,000 GPUs ...")
    t0 = time.perf_counter()
    _generate(src, trace, 310, 10_000)
    gen_s = time.perf_counter() - t0
    p = "multifactor+easy-backfill"
    err.print(f"generated in {gen_s:.0f} s; replaying under {p} ...")
    r = simulate(src, str(trace), "native", "1250x8", p, 1_000_000, tmp)
    print(f"\n1,000,000-job trace ({r['jobs']:,} jobs), 1250x8 = 10,000 GPUs, {p}; "
          f"load after: {_load()}\n")
    print("| replay s (CLI) | jobs/s | replay CPU s | process wall s | process CPU s | "
          "peak RSS MiB | under 5 min |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    print(f"| {r['replay_s']:.1f} | {r['jobs'] / r['replay_s']:,.0f} | "
          f"{r['replay_cpu_s'] or math.nan:.1f} | {r['process_wall_s']:.1f} | "
          f"{r['process_cpu_s']:.1f} | {r['max_rss_mib']:.0f} | "
          f"{'yes' if r['process_wall_s'] < 300 else 'no'} |")
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--trace", default=str(HERE.parent / "shared" / "traces" / "philly.csv"))
    ap.add_argument("--format", default="philly")
    ap.add_argument("--cluster", default="50x8")
    ap.add_argument("--policy", action="append")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--base", help="a base checkout (its src/ is run for the A/B)")
    ap.add_argument("--no-policies", action="store_true", help="skip the per-policy table")
    ap.add_argument("--scaling", action="store_true")
    ap.add_argument("--scale-nodes", type=int, default=200, help="full cluster of --scaling")
    ap.add_argument("--scale-days", type=float, default=60.0, help="trace length of --scaling")
    ap.add_argument("--million", action="store_true")
    ap.add_argument("--work-dir", help="keep generated traces here (default: a temp dir)")
    ap.add_argument("--json")
    args = ap.parse_args()
    nproc = os.cpu_count()
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: nproc={nproc}, "
          f"{_cpu_model()}; Python {platform.python_version()}; load before: {_load()}")
    print(f"command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(args.work_dir) if args.work_dir else Path(t)
        tmp.mkdir(parents=True, exist_ok=True)
        report: dict[str, Any] = {}
        if not args.no_policies:
            report["policies"] = bench_policies(args, tmp)
        if args.scaling:
            report["scaling"] = bench_scaling(args, tmp)
        if args.million:
            report["million"] = bench_million(args, tmp)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
