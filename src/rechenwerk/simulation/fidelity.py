"""How closely a simulated schedule matches a real one, job by job
(``rechenwerk twin validate``; docs/scheduling.md "Fidelity against real Slurm").

Both schedules give, per job id, submit/start/end in seconds from the same origin.
Figures: the absolute start-time error's median and p90, each also relative to the real
mean wait (a start error only matters against how long jobs wait); Spearman's rank
correlation of the start times (does the twin start jobs in Slurm's order); and both
GPU utilisations over the real makespan. Pure arithmetic, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from rechenwerk.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class JobTimes:
    submit: float
    start: float
    end: float
    gpus: int


@dataclass(frozen=True, slots=True)
class Fidelity:
    jobs: int
    median_abs_error_s: float
    p90_abs_error_s: float
    mean_wait_real_s: float
    mean_wait_sim_s: float
    median_rel_error: float  # median |error| / real mean wait
    p90_rel_error: float
    spearman: float
    utilisation_real: float
    utilisation_sim: float
    makespan_real_s: float
    makespan_sim_s: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share the mean of their ranks (Spearman's convention)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        mean_rank = (i + j) / 2 + 1
        for k in range(i, j + 1):
            out[order[k]] = mean_rank
        i = j + 1
    return out


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rho: Pearson correlation of the (tie-averaged) ranks. NaN when either
    side is constant (no order to compare)."""
    if len(xs) != len(ys):
        raise ValueError("spearman needs two sequences of equal length")
    if len(xs) < 2:
        return math.nan
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return math.nan
    return sxy / math.sqrt(sxx * syy)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default), ``q`` in [0, 100]."""
    if not values:
        return math.nan
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def utilisation(jobs: Mapping[str, JobTimes], capacity: int, t0: float, t1: float) -> float:
    """GPU-seconds used inside [t0, t1] over capacity x (t1 - t0)."""
    if t1 <= t0 or capacity <= 0:
        return math.nan
    used = sum(max(0.0, min(j.end, t1) - max(j.start, t0)) * j.gpus for j in jobs.values())
    return used / (capacity * (t1 - t0))


def compare(real: Mapping[str, JobTimes], sim: Mapping[str, JobTimes], capacity: int) -> Fidelity:
    """Compare the jobs both schedules ran (refuses if they share none)."""
    common = sorted(real.keys() & sim.keys())
    if not common:
        raise InvalidInput("the real and simulated schedules have no job in common", field="jobs")
    errs = [abs(sim[j].start - real[j].start) for j in common]
    waits_real = [real[j].start - real[j].submit for j in common]
    waits_sim = [sim[j].start - sim[j].submit for j in common]
    mean_wait = sum(waits_real) / len(common)
    med, p90 = percentile(errs, 50), percentile(errs, 90)
    t0 = min(real[j].submit for j in common)
    t1_real = max(real[j].end for j in common)
    t1_sim = max(sim[j].end for j in common)
    sub_real = {j: real[j] for j in common}
    sub_sim = {j: sim[j] for j in common}
    return Fidelity(
        jobs=len(common),
        median_abs_error_s=med,
        p90_abs_error_s=p90,
        mean_wait_real_s=mean_wait,
        mean_wait_sim_s=sum(waits_sim) / len(common),
        median_rel_error=med / mean_wait if mean_wait > 0 else math.nan,
        p90_rel_error=p90 / mean_wait if mean_wait > 0 else math.nan,
        spearman=spearman([real[j].start for j in common], [sim[j].start for j in common]),
        utilisation_real=utilisation(sub_real, capacity, t0, t1_real),
        utilisation_sim=utilisation(sub_sim, capacity, t0, t1_real),
        makespan_real_s=t1_real - t0,
        makespan_sim_s=t1_sim - t0,
    )
