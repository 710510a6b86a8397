"""Seeded generator of LLM-era GPU workloads (model in docs/traces.md).

A few very large multi-node trainings (hundreds to thousands of GPUs, days to weeks) take
most of the GPU-time; many small jobs (debugging, evaluation, fine-tuning, a few
multi-node ablations) make up most of the job count. Projects have Zipf-skewed activity
and the big trainings concentrate in the biggest projects. Submissions follow a diurnal
and weekly pattern. The same parameters and seed give an identical trace.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from rechenwerk.errors import InvalidInput
from rechenwerk.simulation.traces.base import Trace, TraceJob

DAY_S = 86_400.0
DEFAULT_PROJECTS: tuple[str, ...] = (
    "llm-core",
    "multimodal",
    "nlp-lab",
    "vision",
    "speech",
    "bio-ml",
    "climate",
    "robotics",
)


@dataclass(frozen=True, slots=True)
class SmallJobClass:
    """A class of small jobs: GPU sizes with weights, log-normal run time, QOS mix."""

    name: str
    count_weight: float
    gpu_sizes: tuple[int, ...]
    gpu_size_weights: tuple[float, ...]
    median_s: float
    sigma: float  # of log(duration)
    max_s: float
    qos_high: float = 0.0
    qos_low: float = 0.0


SMALL_CLASSES: tuple[SmallJobClass, ...] = (
    SmallJobClass("debug", 0.45, (1, 2), (0.85, 0.15), 600.0, 1.0, 3_600.0, qos_high=0.5),
    SmallJobClass(
        "eval", 0.35, (1, 2, 4, 8), (0.4, 0.2, 0.2, 0.2), 1_800.0, 1.0, 6 * 3_600.0, qos_low=0.2
    ),
    SmallJobClass("finetune", 0.18, (4, 8, 16), (0.25, 0.6, 0.15), 4 * 3_600.0, 0.9, 2 * DAY_S),
    SmallJobClass("ablation", 0.02, (16, 32, 64), (0.5, 0.35, 0.15), 12 * 3_600.0, 0.7, 3 * DAY_S),
)


@dataclass(frozen=True, slots=True)
class WorkloadParams:
    """All knobs of :func:`generate_llm_workload` (recorded with generated traces)."""

    seed: int
    days: float
    total_gpus: int
    gpus_per_node: int = 8
    load: float = 0.9  # offered GPU-time / (total_gpus x days)
    large_fraction: float = 0.6  # share of the offered GPU-time in large trainings
    large_max_cluster_fraction: float = 0.5  # a training uses at most this part of the GPUs
    large_min_gpus: int = 128
    large_min_days: float = 1.0
    large_max_days: float = 14.0
    n_projects: int = 6
    project_skew: float = 1.0  # Zipf exponent of project activity
    diurnal_amplitude: float = 0.6  # 0 = flat; rate ~ 1 + a*cos(2 pi (h - peak)/24)
    peak_hour_utc: float = 14.0
    weekend_factor: float = 0.5
    walltime_slack: tuple[float, float] = (1.2, 3.0)  # estimate = duration x U(lo, hi)
    gpu_type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def project_names(n_projects: int) -> list[str]:
    names = list(DEFAULT_PROJECTS[:n_projects])
    names += [f"project-{i + 1:02d}" for i in range(len(names), n_projects)]
    return names


def project_weights(n_projects: int, skew: float) -> dict[str, float]:
    """Normalised Zipf weights of the generated projects (usable as metric shares)."""
    raw = [1.0 / (k + 1) ** skew for k in range(n_projects)]
    total = sum(raw)
    return {name: w / total for name, w in zip(project_names(n_projects), raw, strict=True)}


def generate_llm_workload(
    *,
    seed: int,
    days: float,
    total_gpus: int,
    gpus_per_node: int = 8,
    load: float = 0.9,
    large_fraction: float = 0.6,
    large_max_cluster_fraction: float = 0.5,
    large_min_gpus: int = 128,
    large_min_days: float = 1.0,
    large_max_days: float = 14.0,
    n_projects: int = 6,
    project_skew: float = 1.0,
    diurnal_amplitude: float = 0.6,
    peak_hour_utc: float = 14.0,
    weekend_factor: float = 0.5,
    walltime_slack: tuple[float, float] = (1.2, 3.0),
    gpu_type: str | None = None,
) -> Trace:
    """Generate a synthetic LLM-era trace; see :class:`WorkloadParams` and docs/traces.md."""
    p = WorkloadParams(
        seed=seed,
        days=days,
        total_gpus=total_gpus,
        gpus_per_node=gpus_per_node,
        load=load,
        large_fraction=large_fraction,
        large_max_cluster_fraction=large_max_cluster_fraction,
        large_min_gpus=large_min_gpus,
        large_min_days=large_min_days,
        large_max_days=large_max_days,
        n_projects=n_projects,
        project_skew=project_skew,
        diurnal_amplitude=diurnal_amplitude,
        peak_hour_utc=peak_hour_utc,
        weekend_factor=weekend_factor,
        walltime_slack=walltime_slack,
        gpu_type=gpu_type,
    )
    _validate(p)
    return _generate(p)


def _bad(field: str, message: str, hint: str | None = None) -> InvalidInput:
    return InvalidInput(message=message, field=field, hint=hint)


def _validate(p: WorkloadParams) -> None:
    if not (isinstance(p.seed, int) and p.seed >= 0):
        raise _bad("seed", f"seed must be a non-negative integer, got {p.seed!r}")
    if not (math.isfinite(p.days) and 0 < p.days <= 3650):
        raise _bad("days", f"days must be in (0, 3650], got {p.days!r}")
    if p.gpus_per_node < 1:
        raise _bad("gpus_per_node", f"gpus_per_node must be >= 1, got {p.gpus_per_node}")
    if p.total_gpus < p.gpus_per_node or p.total_gpus % p.gpus_per_node:
        raise _bad(
            "total_gpus",
            f"total_gpus must be a positive multiple of gpus_per_node ({p.gpus_per_node}), "
            f"got {p.total_gpus}",
            hint="e.g. --gpus 448 for 56 nodes x 8 GPUs",
        )
    if not 0 < p.load <= 5:
        raise _bad("load", f"load must be in (0, 5], got {p.load}")
    if not 0 <= p.large_fraction <= 1:
        raise _bad("large_fraction", f"large_fraction must be in [0, 1], got {p.large_fraction}")
    if not 0 < p.large_max_cluster_fraction <= 1:
        raise _bad(
            "large_max_cluster_fraction",
            f"large_max_cluster_fraction must be in (0, 1], got {p.large_max_cluster_fraction}",
        )
    if not 0 < p.large_min_days <= p.large_max_days:
        raise _bad("large_min_days", "need 0 < large_min_days <= large_max_days")
    if p.n_projects < 1:
        raise _bad("n_projects", f"n_projects must be >= 1, got {p.n_projects}")
    if p.project_skew < 0:
        raise _bad("project_skew", f"project_skew must be >= 0, got {p.project_skew}")
    if not 0 <= p.diurnal_amplitude < 1:
        raise _bad("diurnal_amplitude", "diurnal_amplitude must be in [0, 1)")
    if not 0 < p.weekend_factor <= 1:
        raise _bad("weekend_factor", "weekend_factor must be in (0, 1]")
    lo, hi = p.walltime_slack
    if not 1 <= lo <= hi:
        raise _bad("walltime_slack", "walltime_slack must be (lo, hi) with 1 <= lo <= hi")


def _submission_times(rng: Any, n: int, p: WorkloadParams) -> Any:
    """n submit times (s) on [0, days) from a diurnal/weekly rate, by inverse CDF on minutes.

    Day 0 is a Monday 00:00 UTC.
    """
    import numpy as np

    minutes = math.ceil(p.days * 1440)
    t = np.arange(minutes) * 60.0
    hour = (t / 3600.0) % 24.0
    rate = 1.0 + p.diurnal_amplitude * np.cos(2 * np.pi * (hour - p.peak_hour_utc) / 24.0)
    weekday = (t // DAY_S).astype(np.int64) % 7
    rate = np.where(weekday >= 5, rate * p.weekend_factor, rate)
    end_s = p.days * DAY_S
    width = np.minimum(t + 60.0, end_s) - t  # last minute may be partial
    cdf = np.cumsum(rate * width)
    cdf /= cdf[-1]
    idx = np.searchsorted(cdf, rng.random(n), side="right")
    idx = np.minimum(idx, minutes - 1)
    return np.floor(t[idx] + rng.random(n) * width[idx])


def _walltimes(rng: Any, durations: Any, p: WorkloadParams) -> Any:
    """User estimates: duration x U(slack) rounded up to 15 minutes (as people type them)."""
    import numpy as np

    lo, hi = p.walltime_slack
    est = durations * rng.uniform(lo, hi, size=durations.shape)
    return np.maximum(900.0, np.ceil(est / 900.0) * 900.0)


def _generate(p: WorkloadParams) -> Trace:
    import numpy as np

    rng = np.random.Generator(np.random.PCG64(p.seed))
    names = project_names(p.n_projects)
    weights = np.array(list(project_weights(p.n_projects, p.project_skew).values()))
    budget = p.load * p.total_gpus * p.days * DAY_S  # GPU-seconds offered
    gpn = p.gpus_per_node

    kinds: list[str] = []
    submit_parts: list[Any] = []
    dur_parts: list[Any] = []
    gpu_parts: list[Any] = []
    proj_parts: list[Any] = []
    qos_parts: list[Any] = []

    # --- large trainings ---------------------------------------------------------
    large_budget = p.large_fraction * budget
    max_nodes = max(1, int(p.large_max_cluster_fraction * p.total_gpus) // gpn)
    min_nodes = max(1, min(max_nodes, math.ceil(p.large_min_gpus / gpn)))
    horizon_days = max(p.large_min_days, min(p.large_max_days, p.days))
    big_w = weights**2 / np.sum(weights**2)  # trainings concentrate in the big projects
    l_gpus: list[int] = []
    l_dur: list[float] = []
    used = 0.0
    while large_budget > 0 and used < large_budget:
        nodes = round(math.exp(rng.uniform(math.log(min_nodes), math.log(max_nodes))))
        d_days = math.exp(rng.uniform(math.log(p.large_min_days), math.log(horizon_days)))
        dur = float(round(d_days * DAY_S))
        l_gpus.append(nodes * gpn)
        l_dur.append(dur)
        used += nodes * gpn * dur
    n_large = len(l_gpus)
    if n_large:
        # trainings start in working hours too, but not in the last few hours of the trace
        submit_parts.append(_submission_times(rng, n_large, p))
        dur_parts.append(np.array(l_dur))
        gpu_parts.append(np.array(l_gpus, dtype=np.int64))
        proj_parts.append(rng.choice(len(names), size=n_large, p=big_w))
        qos_parts.append(np.zeros(n_large, dtype=np.int64))
        kinds += ["train"] * n_large

    # --- small jobs: draw a generous batch, keep the prefix that fills the budget ----
    small_budget = max(0.0, budget - used) if p.large_fraction < 1 else 0.0
    if small_budget > 0:
        cls_w = np.array([c.count_weight for c in SMALL_CLASSES])
        cls_w /= cls_w.sum()
        mean_gpu_s = 0.0
        for c, w in zip(SMALL_CLASSES, cls_w, strict=True):
            sizes = np.minimum(np.array(c.gpu_sizes), p.total_gpus)
            sw = np.array(c.gpu_size_weights) / sum(c.gpu_size_weights)
            mean_dur = min(c.median_s * math.exp(c.sigma**2 / 2), c.max_s)
            mean_gpu_s += w * float(np.dot(sizes, sw)) * mean_dur
        batch = int(small_budget / mean_gpu_s * 1.3) + 16
        while True:
            cls = rng.choice(len(SMALL_CLASSES), size=batch, p=cls_w)
            gpus = np.empty(batch, dtype=np.int64)
            sdur = np.empty(batch)
            qos = np.zeros(batch, dtype=np.int64)  # 0 normal, 1 high, 2 low
            u = rng.random(batch)
            for k, c in enumerate(SMALL_CLASSES):
                m = cls == k
                cnt = int(m.sum())
                sw = np.array(c.gpu_size_weights) / sum(c.gpu_size_weights)
                sizes = np.minimum(np.array(c.gpu_sizes, dtype=np.int64), p.total_gpus)
                gpus[m] = rng.choice(sizes, size=cnt, p=sw)
                d = rng.lognormal(math.log(c.median_s), c.sigma, size=cnt)
                sdur[m] = np.clip(np.round(d), 1.0, c.max_s)
                qos[m & (u < c.qos_high)] = 1
                qos[m & (u >= 1 - c.qos_low)] = 2
            cum = np.cumsum(gpus * sdur)
            if cum[-1] >= small_budget:
                break
            batch *= 2
        n_small = int(np.searchsorted(cum, small_budget, side="left")) + 1
        # multi-node small jobs must fill whole nodes
        sg = gpus[:n_small]
        sg = np.where(sg > gpn, (sg // gpn) * gpn, sg)
        submit_parts.append(_submission_times(rng, n_small, p))
        dur_parts.append(sdur[:n_small])
        gpu_parts.append(sg)
        proj_parts.append(rng.choice(len(names), size=n_small, p=weights))
        qos_parts.append(qos[:n_small])
        kinds += [SMALL_CLASSES[k].name for k in cls[:n_small]]

    if not kinds:
        return Trace(jobs=(), skipped=(), source=_source(p))
    submit = np.concatenate(submit_parts)
    dur_all = np.concatenate(dur_parts)
    gpus_all = np.concatenate(gpu_parts)
    proj_all = np.concatenate(proj_parts)
    qos_all = np.concatenate(qos_parts)
    wall = _walltimes(rng, dur_all, p)
    order = np.argsort(submit, kind="stable")
    qos_names = ("normal", "high", "low")
    jobs: list[TraceJob] = []
    for i, j in enumerate(order.tolist()):
        ng = int(gpus_all[j])
        jobs.append(
            TraceJob(
                job_id=f"{kinds[j]}-{i + 1:06d}",
                submit_time=float(submit[j]),
                duration_s=float(dur_all[j]),
                gpus=ng,
                project=names[int(proj_all[j])],
                walltime_s=float(wall[j]),
                gpus_per_node=gpn if ng >= gpn else None,
                qos=qos_names[int(qos_all[j])],
                gpu_type=p.gpu_type,
            )
        )
    return Trace(jobs=tuple(jobs), skipped=(), source=_source(p))


def _source(p: WorkloadParams) -> str:
    return (
        f"generated:llm-workload seed={p.seed} days={p.days:g} total_gpus={p.total_gpus} "
        f"load={p.load:g}"
    )
