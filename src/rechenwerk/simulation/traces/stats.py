"""Summary statistics of a trace (``rechenwerk trace stats``)."""

from __future__ import annotations

from typing import Any

from rechenwerk.simulation.traces.base import Trace


def trace_stats(trace: Trace) -> dict[str, Any]:
    """Jobs, span, GPU-hours, GPU-size histogram, run-time percentiles, per project."""
    import numpy as np

    jobs = trace.jobs
    n = len(jobs)
    out: dict[str, Any] = {
        "source": trace.source,
        "jobs": n,
        "skipped_rows": len(trace.skipped),
    }
    if n == 0:
        return out
    submit = np.fromiter((j.submit_time for j in jobs), dtype=float, count=n)
    dur = np.fromiter((j.duration_s for j in jobs), dtype=float, count=n)
    gpus = np.fromiter((j.gpus for j in jobs), dtype=np.int64, count=n)
    gpu_s = dur * gpus
    span = float(submit.max() - submit.min())
    sizes, counts = np.unique(gpus, return_counts=True)
    pct = np.percentile(dur, [50, 90, 99])
    projects: dict[str, dict[str, float]] = {}
    for j, g in zip(jobs, gpu_s.tolist(), strict=True):
        p = projects.setdefault(j.project, {"jobs": 0, "gpu_hours": 0.0})
        p["jobs"] += 1
        p["gpu_hours"] += g / 3600.0
    total_gh = float(gpu_s.sum()) / 3600.0
    out.update(
        {
            "submit_span_days": span / 86_400.0,
            "gpu_hours": total_gh,
            "avg_busy_gpus_over_span": float(gpu_s.sum()) / span if span > 0 else None,
            "max_gpus": int(gpus.max()),
            "jobs_by_gpus": {int(s): int(c) for s, c in zip(sizes, counts, strict=True)},
            "duration_s": {
                "min": float(dur.min()),
                "p50": float(pct[0]),
                "p90": float(pct[1]),
                "p99": float(pct[2]),
                "max": float(dur.max()),
            },
            "with_walltime": sum(1 for j in jobs if j.walltime_s is not None),
            # distinct submitters (a centre's own history names them; 0: no user column)
            "users": len({j.user for j in jobs if j.user is not None}),
            "qos": _count(j.qos for j in jobs),
            "projects": dict(sorted(projects.items(), key=lambda kv: (-kv[1]["gpu_hours"], kv[0]))),
        }
    )
    return out


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts
