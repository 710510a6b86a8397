"""Per-job, per-project and cluster metrics of one simulated policy run.

Definitions (also in ``docs/traces.md``):

- wait = first start - submit; JCT = end - submit;
  bounded slowdown = max(1, JCT / max(duration, 10 s)).
- utilisation = integral of busy GPUs over the window / (total GPUs x window length);
  the window is [first submit, last end] (its length is the makespan).
- Jain's index over projects of x_p = received_p / entitled_p, where both are summed over
  fixed fairness windows and entitled is the weighted max-min fair split of the GPU-time
  delivered in that window, capped by each project's demand in it (what it held, plus
  for each waiting job its GPUs x min(wait overlap, run time)).
- per organisation kind (when ``kinds`` maps projects to kinds, e.g. from the trace's
  ``kind`` column): the kind's jobs and projects, p50 / p90 / mean wait, and its received
  and entitled GPU-hours summed over its projects with their ratio; projects without a
  kind are ``(not given)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rechenwerk.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What happened to one job in a run (times in seconds on the trace axis)."""

    job_id: str
    project: str
    gpus: int
    submit_time: float
    first_start_time: float
    end_time: float
    duration_s: float  # useful run time needed
    preemptions: int = 0
    lost_gpu_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Timeline:
    """Step functions sampled at every change, in time order.

    ``busy_gpus[i]`` and ``queue_len[i]`` hold from ``times[i]`` until ``times[i + 1]``.
    """

    times: Sequence[float]
    busy_gpus: Sequence[int]
    queue_len: Sequence[int]
    total_gpus: int


@dataclass(frozen=True, slots=True)
class ProjectMetrics:
    """One project's service in a run."""

    project: str
    jobs: int
    share: float  # normalised share (sums to 1 over the projects of the run)
    gpu_hours: float  # useful GPU-hours delivered (gpus x duration)
    lost_gpu_hours: float  # GPU-hours thrown away by preemption (work since checkpoint)
    received_fraction: float  # gpu_hours / all useful GPU-hours of the run
    received_gpu_hours: float  # GPU-hours held (useful + lost), used for fairness
    entitled_gpu_hours: float  # windowed weighted max-min fair entitlement
    fair_ratio: float  # x_p = received / entitled (1.0 = exactly fair)
    avg_wait_s: float
    p95_wait_s: float


@dataclass(frozen=True, slots=True)
class KindMetrics:
    """The service of the projects of one organisation kind in a run."""

    kind: str
    projects: int
    jobs: int
    p50_wait_s: float
    p90_wait_s: float
    avg_wait_s: float
    received_gpu_hours: float  # summed over its projects (as ProjectMetrics)
    entitled_gpu_hours: float
    fair_ratio: float  # received / entitled over the kind (1.0 when nothing was entitled)


NO_KIND = "(not given)"


@dataclass(frozen=True, slots=True)
class PolicyMetrics:
    """Aggregates of one run. Percentiles use linear interpolation (NumPy default)."""

    jobs: int
    avg_wait_s: float
    p50_wait_s: float
    p90_wait_s: float
    p95_wait_s: float
    max_wait_s: float
    avg_jct_s: float
    p50_jct_s: float
    p90_jct_s: float
    p95_jct_s: float
    avg_bounded_slowdown: float
    p50_bounded_slowdown: float
    p90_bounded_slowdown: float
    p95_bounded_slowdown: float
    utilization: float  # busy GPU-time / (total GPUs x makespan window)
    useful_utilization: float  # useful GPU-time / (total GPUs x makespan window)
    avg_queue_len: float  # time-weighted over the window
    max_queue_len: int
    jain_fairness: float
    makespan_s: float
    window_start_s: float
    window_end_s: float
    total_gpus: int
    gpu_hours: float
    lost_gpu_hours: float
    preemptions: int
    fairness_window_s: float
    per_project: tuple[ProjectMetrics, ...]
    per_kind: tuple[KindMetrics, ...] = ()  # empty when no project has a kind
    # jobs larger than one 8-GPU node (gpus > LARGE_JOB_GPUS): how many, their waits
    # (to the first start, like every wait here) and their mean JCT; 0 when there are none
    large_jobs: int = 0
    large_avg_wait_s: float = 0.0
    large_p95_wait_s: float = 0.0
    large_avg_jct_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``per_project`` becomes a mapping project -> metrics,
        ``per_kind`` one kind -> metrics."""
        out = asdict(self)
        out["per_project"] = {
            p.project: {k: v for k, v in asdict(p).items() if k != "project"}
            for p in self.per_project
        }
        out["per_kind"] = {
            k.kind: {f: v for f, v in asdict(k).items() if f != "kind"} for k in self.per_kind
        }
        return out


_MIN_SLOWDOWN_DURATION_S = 10.0
LARGE_JOB_GPUS = 8  # "large": more GPUs than this (more than one 8-GPU node)


def jain_index(values: Sequence[float]) -> float:
    """Jain's fairness index (sum x)^2 / (n * sum x^2): 1 = equal, 1/n = one takes all."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return 1.0
    top = float(np.abs(x).max())
    if top == 0.0:
        return 1.0
    x = x / top  # scale-free: squares of tiny (or huge) values under/overflow otherwise
    return float(x.sum() ** 2 / (x.size * float(np.dot(x, x))))


def compute_metrics(
    outcomes: Sequence[JobOutcome],
    timeline: Timeline,
    *,
    shares: Mapping[str, float] | None = None,
    fairness_window_s: float = 3600.0,
    kinds: Mapping[str, str] | None = None,
) -> PolicyMetrics:
    """Compute every metric of one run (NumPy; ~0.1 s for the 82k-job Philly trace).

    ``shares`` maps project -> relative weight (default: equal); projects of the run that
    are missing from it are an error. ``fairness_window_s`` is the length of the windows
    in which entitlements are computed (see module docstring). ``kinds`` maps project
    -> organisation kind for the per-kind metrics (None or empty: none computed).
    """
    import numpy as np

    if not fairness_window_s > 0:
        raise InvalidInput(
            message=f"fairness window must be positive, got {fairness_window_s!r}",
            field="fairness_window_s",
            hint="use a window such as 3600 (one hour)",
        )
    n = len(outcomes)
    total_gpus = int(timeline.total_gpus)
    if n == 0:
        return _empty_metrics(total_gpus, fairness_window_s)

    submit = np.fromiter((o.submit_time for o in outcomes), dtype=float, count=n)
    start = np.fromiter((o.first_start_time for o in outcomes), dtype=float, count=n)
    end = np.fromiter((o.end_time for o in outcomes), dtype=float, count=n)
    dur = np.fromiter((o.duration_s for o in outcomes), dtype=float, count=n)
    gpus = np.fromiter((o.gpus for o in outcomes), dtype=float, count=n)
    lost = np.fromiter((o.lost_gpu_s for o in outcomes), dtype=float, count=n)
    preemptions = int(sum(o.preemptions for o in outcomes))
    code_of: dict[str, int] = {}
    codes = np.fromiter(
        (code_of.setdefault(o.project, len(code_of)) for o in outcomes), dtype=np.int64, count=n
    )
    names = list(code_of)

    bad = np.flatnonzero((start < submit) | (end < start))
    if bad.size:
        o = outcomes[int(bad[0])]
        raise InvalidInput(
            message=(
                f"job {o.job_id!r}: inconsistent outcome (submit {o.submit_time}, "
                f"first start {o.first_start_time}, end {o.end_time})"
            ),
            field="outcomes",
            hint="outcomes need submit <= first start <= end",
        )

    wait = start - submit
    jct = end - submit
    bsld = np.maximum(1.0, jct / np.maximum(dur, _MIN_SLOWDOWN_DURATION_S))
    useful_gpu_s = gpus * dur
    held_gpu_s = useful_gpu_s + lost

    ws = float(submit.min())
    we = float(end.max())
    makespan = we - ws

    busy_integral, queue_integral, max_queue = _integrate_timeline(timeline, ws, we)
    if busy_integral is None:  # no timeline: the GPU-time jobs held is the same integral
        busy_integral = float(held_gpu_s.sum())
    capacity = total_gpus * makespan
    utilization = busy_integral / capacity if capacity > 0 else 0.0
    useful_utilization = float(useful_gpu_s.sum()) / capacity if capacity > 0 else 0.0
    avg_queue = queue_integral / makespan if makespan > 0 else 0.0

    # --- fairness: received vs windowed max-min entitlement --------------------------
    weights = _share_weights(names, shares)
    edges = _window_edges(ws, we, fairness_window_s)
    run_len = end - start
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(run_len > 0, held_gpu_s / run_len, 0.0)
    received = _binned_integral(codes, start, end, rate, len(names), edges)
    # A waiting job could have used its GPUs for at most its run time in any window.
    # Between first start and end a preempted job waits for the part of the time it did
    # not hold its GPUs (spread evenly, like its GPU-time).
    cap = np.minimum(1.0, dur / fairness_window_s)
    demand = (
        received
        + _binned_integral(codes, submit, start, gpus * cap, len(names), edges)
        + _binned_integral(codes, start, end, np.maximum(gpus - rate, 0.0) * cap, len(names), edges)
    )
    entitled = _water_fill(received.sum(axis=0), demand, weights)
    rec_tot = received.sum(axis=1)
    ent_tot = entitled.sum(axis=1)
    has_ent = ent_tot > 1e-9 * max(1.0, float(ent_tot.max(initial=0.0)))
    ratios = np.where(has_ent, rec_tot / np.where(has_ent, ent_tot, 1.0), 0.0)
    jain = jain_index(ratios[has_ent].tolist())

    # --- per project -------------------------------------------------------------------
    useful_total = float(useful_gpu_s.sum())
    norm = weights / weights.sum()
    per_project: list[ProjectMetrics] = []
    counts = np.bincount(codes, minlength=len(names))
    useful_p = np.bincount(codes, weights=useful_gpu_s, minlength=len(names))
    lost_p = np.bincount(codes, weights=lost, minlength=len(names))
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    for c, name in enumerate(names):
        w = wait[order[bounds[c] : bounds[c + 1]]]
        per_project.append(
            ProjectMetrics(
                project=name,
                jobs=int(counts[c]),
                share=float(norm[c]),
                gpu_hours=float(useful_p[c]) / 3600.0,
                lost_gpu_hours=float(lost_p[c]) / 3600.0,
                received_fraction=float(useful_p[c]) / useful_total if useful_total else 0.0,
                received_gpu_hours=float(rec_tot[c]) / 3600.0,
                entitled_gpu_hours=float(ent_tot[c]) / 3600.0,
                fair_ratio=float(ratios[c]) if has_ent[c] else 1.0,
                avg_wait_s=float(w.mean()),
                p95_wait_s=float(np.percentile(w, 95)),
            )
        )
    per_project.sort(key=lambda p: (-p.gpu_hours, p.project))
    per_kind: list[KindMetrics] = []
    if kinds:
        kind_of = [kinds.get(name) or NO_KIND for name in names]
        job_kind = np.asarray(kind_of, dtype=object)[codes]
        for kind in sorted(set(kind_of)):
            members = [c for c, k in enumerate(kind_of) if k == kind]
            w = wait[job_kind == kind]
            rec = float(rec_tot[members].sum())
            ent = float(ent_tot[members].sum())
            kp = np.percentile(w, [50, 90])
            per_kind.append(KindMetrics(
                kind=kind, projects=len(members), jobs=int(w.size),
                p50_wait_s=float(kp[0]), p90_wait_s=float(kp[1]), avg_wait_s=float(w.mean()),
                received_gpu_hours=rec / 3600.0, entitled_gpu_hours=ent / 3600.0,
                fair_ratio=rec / ent if ent > 1e-9 else 1.0))

    big = gpus > LARGE_JOB_GPUS
    n_big = int(big.sum())
    wp = np.percentile(wait, [50, 90, 95])
    jp = np.percentile(jct, [50, 90, 95])
    sp = np.percentile(bsld, [50, 90, 95])
    return PolicyMetrics(
        jobs=n,
        avg_wait_s=float(wait.mean()),
        p50_wait_s=float(wp[0]),
        p90_wait_s=float(wp[1]),
        p95_wait_s=float(wp[2]),
        max_wait_s=float(wait.max()),
        avg_jct_s=float(jct.mean()),
        p50_jct_s=float(jp[0]),
        p90_jct_s=float(jp[1]),
        p95_jct_s=float(jp[2]),
        avg_bounded_slowdown=float(bsld.mean()),
        p50_bounded_slowdown=float(sp[0]),
        p90_bounded_slowdown=float(sp[1]),
        p95_bounded_slowdown=float(sp[2]),
        utilization=float(utilization),
        useful_utilization=float(useful_utilization),
        avg_queue_len=float(avg_queue),
        max_queue_len=int(max_queue),
        jain_fairness=jain,
        makespan_s=makespan,
        window_start_s=ws,
        window_end_s=we,
        total_gpus=total_gpus,
        gpu_hours=useful_total / 3600.0,
        lost_gpu_hours=float(lost.sum()) / 3600.0,
        preemptions=preemptions,
        fairness_window_s=float(fairness_window_s),
        per_project=tuple(per_project),
        per_kind=tuple(per_kind),
        large_jobs=n_big,
        large_avg_wait_s=float(wait[big].mean()) if n_big else 0.0,
        large_p95_wait_s=float(np.percentile(wait[big], 95)) if n_big else 0.0,
        large_avg_jct_s=float(jct[big].mean()) if n_big else 0.0,
    )


def _empty_metrics(total_gpus: int, fairness_window_s: float) -> PolicyMetrics:
    return PolicyMetrics(
        jobs=0,
        avg_wait_s=0.0,
        p50_wait_s=0.0,
        p90_wait_s=0.0,
        p95_wait_s=0.0,
        max_wait_s=0.0,
        avg_jct_s=0.0,
        p50_jct_s=0.0,
        p90_jct_s=0.0,
        p95_jct_s=0.0,
        avg_bounded_slowdown=0.0,
        p50_bounded_slowdown=0.0,
        p90_bounded_slowdown=0.0,
        p95_bounded_slowdown=0.0,
        utilization=0.0,
        useful_utilization=0.0,
        avg_queue_len=0.0,
        max_queue_len=0,
        jain_fairness=1.0,
        makespan_s=0.0,
        window_start_s=0.0,
        window_end_s=0.0,
        total_gpus=total_gpus,
        gpu_hours=0.0,
        lost_gpu_hours=0.0,
        preemptions=0,
        fairness_window_s=float(fairness_window_s),
        per_project=(),
    )


def _integrate_timeline(
    timeline: Timeline, ws: float, we: float
) -> tuple[float | None, float, int]:
    """Integrals of busy GPUs and queue length over [ws, we], and the max queue length.

    Returns ``None`` for the busy integral when the timeline has no samples.
    """
    import numpy as np

    t = np.asarray(timeline.times, dtype=float)
    if t.size == 0:
        return None, 0.0, 0
    busy = np.asarray(timeline.busy_gpus, dtype=float)
    queue = np.asarray(timeline.queue_len, dtype=float)
    if busy.shape != t.shape or queue.shape != t.shape:
        raise InvalidInput(
            message=(
                f"timeline arrays differ in length (times {t.size}, busy_gpus {busy.size}, "
                f"queue_len {queue.size})"
            ),
            field="timeline",
        )
    nxt = np.empty_like(t)
    nxt[:-1] = t[1:]
    nxt[-1] = max(we, float(t[-1]))
    dt = np.clip(nxt, ws, we) - np.clip(t, ws, we)
    inside = (nxt > ws) & (t < we)
    max_q = int(queue[inside].max()) if inside.any() else 0
    return float(np.dot(busy, dt)), float(np.dot(queue, dt)), max_q


def _share_weights(names: Sequence[str], shares: Mapping[str, float] | None) -> Any:
    import numpy as np

    if shares is None:
        return np.ones(len(names))
    missing = [p for p in names if p not in shares]
    if missing:
        raise InvalidInput(
            message=f"no share given for project(s) {', '.join(sorted(missing))}",
            field="shares",
            hint="give every project of the trace a positive share, or omit shares "
            "for equal shares",
        )
    bad = [p for p in names if not shares[p] > 0]
    if bad:
        raise InvalidInput(
            message=f"shares must be positive; not for {', '.join(sorted(bad))}",
            field="shares",
        )
    return np.array([float(shares[p]) for p in names])


def _window_edges(ws: float, we: float, width: float) -> Any:
    import numpy as np

    nbins = max(1, int(np.ceil((we - ws) / width)))
    edges = ws + width * np.arange(nbins + 1, dtype=float)
    edges[-1] = max(we, ws)
    if edges[-1] <= edges[-2] and nbins > 1:  # float rounding made a zero-width bin
        edges = edges[:-1]
        edges[-1] = we
    return edges


def _binned_integral(codes: Any, a: Any, b: Any, rate: Any, nproj: int, edges: Any) -> Any:
    """For each project, the integral over each window of sum of ``rate`` on [a, b).

    Exact for piecewise-constant rates: cumulative integral at event times, linearly
    interpolated at the window edges. Shape (projects, windows).
    """
    import numpy as np

    out = np.zeros((nproj, len(edges) - 1))
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(nproj + 1))
    for c in range(nproj):
        idx = order[bounds[c] : bounds[c + 1]]
        times = np.concatenate((a[idx], b[idx]))
        deltas = np.concatenate((rate[idx], -rate[idx]))
        srt = np.argsort(times, kind="stable")
        t = times[srt]
        level = np.cumsum(deltas[srt])
        cum = np.zeros(t.size)
        np.cumsum(level[:-1] * np.diff(t), out=cum[1:])
        out[c] = np.diff(np.interp(edges, t, cum))
    return out


def _water_fill(delivered: Any, demand: Any, weights: Any) -> Any:
    """Weighted max-min fair split of ``delivered`` (per window) capped by ``demand``.

    Per window finds lambda with sum_p min(d_p, lambda * w_p) = delivered; vectorised over
    windows. Shapes: delivered (W,), demand (P, W), weights (P,) -> (P, W).
    """
    import numpy as np

    nproj, nwin = demand.shape
    w = np.broadcast_to(weights[:, None], demand.shape)
    ratio = demand / w
    order = np.argsort(ratio, axis=0, kind="stable")
    r_s = np.take_along_axis(ratio, order, axis=0)
    d_s = np.take_along_axis(demand, order, axis=0)
    w_s = np.take_along_axis(w, order, axis=0)
    cum_d = np.cumsum(d_s, axis=0)
    tail_w = weights.sum() - np.cumsum(w_s, axis=0)
    f = cum_d + r_s * tail_w  # delivered amount at which project k saturates
    k = np.minimum((f < delivered[None, :]).sum(axis=0), nproj - 1)
    cols = np.arange(nwin)
    prev_d = np.where(k > 0, cum_d[np.maximum(k - 1, 0), cols], 0.0)
    prev_w = np.where(k > 0, tail_w[np.maximum(k - 1, 0), cols], weights.sum())
    lam = np.maximum(delivered - prev_d, 0.0) / prev_w
    return np.minimum(demand, lam[None, :] * w)
