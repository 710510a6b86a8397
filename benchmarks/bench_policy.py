"""fair-las against fifo, las and multifactor+easy-backfill (issue 13 item 6), through the
CLI (``rechenwerk simulate ... --json``, Rich progress on the terminal), on

  (a) the first 20,000 Philly jobs on 50x8 GPUs,
  (b) the full Philly trace (82,247 jobs) on 50x8 GPUs,
  (c) a generated LLM-era trace: ``rechenwerk trace generate --seed 7 --days 30
      --gpus 400 --out <tmp>/llm.csv``, replayed on 50x8 GPUs,

all with the same (default) parameters. Prints per workload and policy the mean JCT,
Jain, p95 wait of jobs with more than 8 GPUs (to their first start, as every wait), the
mean JCT of those jobs, preemptions, lost GPU-hours and the mean-JCT ratio against fifo,
then every target of the issue marked met / not met.

    .venv/bin/python benchmarks/bench_policy.py [--trace ../shared/traces/philly.csv]
        [--only slice|full|llm ...] [--json OUT] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

POLICIES = ("fifo", "las", "multifactor+easy-backfill", "fair-las")
NEW = "fair-las"
MF = "multifactor+easy-backfill"
LLM_CMD = ("trace", "generate", "--seed", "7", "--days", "30", "--gpus", "400")


def _cli() -> list[str]:
    exe = shutil.which("rechenwerk")
    venv = Path(sys.executable).with_name("rechenwerk")
    if venv.exists():
        return [str(venv)]
    if exe:
        return [exe]
    return [sys.executable, "-m", "rechenwerk.cli.main"]


def _run(args: list[str]) -> None:
    print("$ rechenwerk " + " ".join(args), flush=True)
    subprocess.run([*_cli(), *args], check=True)


def _simulate(trace: str, fmt: str, limit: int | None, out: Path,
              policies: tuple[str, ...] = POLICIES) -> dict[str, Any]:
    args = ["simulate", "--trace", trace, "--format", fmt, "--cluster", "50x8"]
    for p in policies:
        args += ["--policy", p]
    if limit:
        args += ["--limit", str(limit)]
    _run([*args, "--json", str(out)])
    data: dict[str, Any] = json.loads(out.read_text())["policies"]
    return data


def _h(s: float) -> str:
    return f"{s / 3600:,.1f} h"


def _targets(name: str, res: dict[str, Any]) -> list[tuple[str, bool]]:
    new, fifo, mf = res[NEW], res["fifo"], res[MF]
    out: list[tuple[str, bool]] = []
    if name == "slice":
        out.append(("mean JCT <= 11.4 h", new["avg_jct_s"] <= 11.4 * 3600))
    if name == "full":
        out.append((">= 10x lower mean JCT than fifo",
                    fifo["avg_jct_s"] >= 10 * new["avg_jct_s"]))
    if name in ("slice", "full"):
        out.append(("Jain >= 0.9", new["jain_fairness"] >= 0.9))
        out.append(("p95 wait of >8-GPU jobs <= multifactor+easy-backfill's",
                    new["large_p95_wait_s"] <= mf["large_p95_wait_s"]))
    if name == "llm":
        out.append(("mean JCT below multifactor+easy-backfill's",
                    new["avg_jct_s"] < mf["avg_jct_s"]))
    return out


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", default=str(here.parent / "shared" / "traces" / "philly.csv"))
    ap.add_argument("--only", action="append", choices=("slice", "full", "llm"))
    ap.add_argument("--json")
    ap.add_argument("--workdir")
    ap.add_argument("--skip", action="append", default=[], metavar="WORKLOAD:POLICY",
                    help="do not run POLICY on WORKLOAD (e.g. full:las, to save time); its "
                    "row and the targets needing it are left out")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_policy_"))
    work.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    results: dict[str, dict[str, Any]] = {}
    for name in args.only or ["slice", "full", "llm"]:
        pols = tuple(p for p in POLICIES if f"{name}:{p}" not in args.skip)
        if name == "slice":
            results[name] = _simulate(args.trace, "philly", 20_000, work / "slice.json", pols)
        elif name == "full":
            results[name] = _simulate(args.trace, "philly", None, work / "full.json", pols)
        else:
            llm = work / "llm.csv"
            _run([*LLM_CMD, "--out", str(llm)])
            results[name] = _simulate(str(llm), "native", None, work / "llm.json", pols)

    print(f"\n{started:%Y-%m-%d %H:%M} UTC, {platform.node()}, nproc {os.cpu_count()}, "
          f"load {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| workload | policy | mean JCT | vs fifo | Jain | p95 wait >8 GPUs | "
          "mean JCT >8 GPUs | preemptions | lost GPU-h |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    verdicts: dict[str, list[tuple[str, bool]]] = {}
    for name, res in results.items():
        fifo = res["fifo"]["avg_jct_s"]
        for p in POLICIES:
            if p not in res:
                continue
            m = res[p]
            print(f"| {name} | {p} | {_h(m['avg_jct_s'])} | {fifo / m['avg_jct_s']:.1f}x | "
                  f"{m['jain_fairness']:.3f} | {_h(m['large_p95_wait_s'])} | "
                  f"{_h(m['large_avg_jct_s'])} | {m['preemptions']:,} | "
                  f"{m['lost_gpu_hours']:,.0f} |")
        verdicts[name] = _targets(name, res)
    print("\nTargets (fair-las, default parameters on every workload):")
    for name, vs in verdicts.items():
        for what, ok in vs:
            print(f"  {name}: {what}: {'met' if ok else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "started": started.isoformat(), "results": {
                n: {p: {k: v for k, v in m.items() if k not in ("per_project", "per_kind")}
                    for p, m in r.items()} for n, r in results.items()},
            "targets": {n: dict(v) for n, v in verdicts.items()}}, indent=1))


if __name__ == "__main__":
    main()
