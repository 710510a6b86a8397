"""Trace I/O and metrics speed: Philly reader, native reader, generator, compute_metrics.

Usage: .venv/bin/python benchmarks/bench_traces.py [--philly PATH] [--repeat N]
Prints one line per step with the best and median wall time of N runs.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rechenwerk.simulation.metrics import JobOutcome, Timeline, compute_metrics
from rechenwerk.simulation.traces import read_trace, write_native_csv
from rechenwerk.simulation.traces.generator import generate_llm_workload


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    times: list[float] = []
    result: Any = None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times), result


def fake_outcomes(jobs: Any) -> tuple[list[JobOutcome], Timeline]:
    """Every job starts at submit (an infinite cluster): realistic sizes, no scheduler."""
    import numpy as np

    outs = [
        JobOutcome(
            j.job_id,
            j.project,
            j.gpus,
            j.submit_time,
            j.submit_time,
            j.submit_time + j.duration_s,
            j.duration_s,
        )
        for j in jobs
    ]
    t = np.array([o.first_start_time for o in outs] + [o.end_time for o in outs])
    d = np.array([o.gpus for o in outs] + [-o.gpus for o in outs])
    order = np.argsort(t, kind="stable")
    busy = np.cumsum(d[order])
    tl = Timeline(t[order].tolist(), busy.tolist(), [0] * len(t), int(busy.max()))
    return outs, tl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--philly", default="/work/shared/traces/philly.csv")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}"
        f", Python {platform.python_version()}"
    )
    best, med, tr = timed(lambda: read_trace(a.philly, "philly"), a.repeat)
    print(f"read philly ({len(tr.jobs):,} jobs): best {best:.3f} s, median {med:.3f} s")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "philly-native.csv"
        best, med, _ = timed(lambda: write_native_csv(tr, path), a.repeat)
        print(f"write native ({len(tr.jobs):,} jobs): best {best:.3f} s, median {med:.3f} s")
        best, med, _ = timed(lambda: read_trace(path), a.repeat)
        print(f"read native ({len(tr.jobs):,} jobs): best {best:.3f} s, median {med:.3f} s")
    best, med, gen = timed(
        lambda: generate_llm_workload(seed=1, days=108.9, total_gpus=448), a.repeat
    )
    print(
        f"generate 108.9 days x 448 GPUs ({len(gen.jobs):,} jobs): best {best:.3f} s, "
        f"median {med:.3f} s"
    )
    outs, tl = fake_outcomes(tr.jobs)
    best, med, _ = timed(lambda: compute_metrics(outs, tl), a.repeat)
    print(
        f"compute_metrics ({len(outs):,} outcomes, {len(tl.times):,} timeline points): "
        f"best {best:.3f} s, median {med:.3f} s"
    )


if __name__ == "__main__":
    main()
