"""Report of a multi-policy simulation: PNG plots and a Rich comparison table.

``write_plots`` draws, for every policy on shared axes: GPU utilisation over time, queue
length over time (both as exact averages over ~1,000 time bins, so 200k-step timelines
plot in milliseconds) and the CDF of job waiting time (log x axis). Matplotlib is imported
lazily and used through its object API (``Figure``), never through pyplot's global state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rechenwerk.errors import InvalidInput
from rechenwerk.simulation.metrics import JobOutcome, PolicyMetrics, Timeline

if TYPE_CHECKING:
    from rich.table import Table

PLOT_BINS = 1000
CDF_POINTS = 2000


class PolicyRun(Protocol):
    """What the report needs of one policy's run (``engine.SimulationResult`` fits)."""

    @property
    def outcomes(self) -> Sequence[JobOutcome]: ...

    @property
    def timeline(self) -> Timeline: ...

    @property
    def metrics(self) -> PolicyMetrics: ...

    @property
    def wall_seconds(self) -> float: ...

    @property
    def jobs_per_second(self) -> float: ...


def run_to_dict(run: PolicyRun) -> dict[str, Any]:
    """JSON-ready summary of one run: every metric plus wall_seconds and jobs_per_second."""
    out = run.metrics.to_dict()
    out["wall_seconds"] = float(run.wall_seconds)
    out["jobs_per_second"] = float(run.jobs_per_second)
    return out


# --- resampling ---------------------------------------------------------------------------


def bin_average(
    times: Sequence[float], values: Sequence[float], t0: float, t1: float, bins: int
) -> tuple[Any, Any]:
    """Exact time-average of a step function (``values[i]`` on [times[i], times[i+1]))
    over ``bins`` equal bins of [t0, t1]; before the first sample the value is 0 and the
    last value holds until t1. Returns (bin centres, averages)."""
    import numpy as np

    t = np.asarray(times, dtype=float)
    v = np.asarray(values, dtype=float)
    edges = np.linspace(t0, t1, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    if t.size == 0 or t1 <= t0:
        return centres, np.zeros(bins)
    # cumulative integral at the samples, then at t1; linear in between
    knots = np.append(t, max(t1, float(t[-1])))
    cum = np.zeros(knots.size)
    np.cumsum(v * np.diff(knots), out=cum[1:])
    integral = np.interp(edges, knots, cum, left=0.0)
    width = (t1 - t0) / bins
    return centres, np.diff(integral) / width


def _time_unit(span_s: float) -> tuple[float, str]:
    if span_s >= 2 * 86_400:
        return 86_400.0, "days"
    if span_s >= 2 * 3_600:
        return 3_600.0, "hours"
    return 1.0, "seconds"


# --- plots --------------------------------------------------------------------------------


def write_plots(
    results: Mapping[str, PolicyRun], plot_dir: str | Path, *, fmt: str = "png"
) -> list[Path]:
    """Write utilisation.png, queue_length.png and wait_cdf.png; return their paths."""
    if not results:
        raise InvalidInput(message="no policy results to plot", field="results")
    if fmt not in ("png", "svg"):
        raise InvalidInput(
            message=f"unknown plot format {fmt!r}", field="fmt", hint="use png or svg"
        )
    import numpy as np
    from matplotlib.figure import Figure

    out = Path(plot_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(
            message=f"cannot create plot directory {out}: {exc.strerror}",
            field="plot_dir",
        ) from exc

    t0 = min(r.metrics.window_start_s for r in results.values())
    t1 = max(r.metrics.window_end_s for r in results.values())
    if t1 <= t0:
        t1 = t0 + 1.0
    scale, unit = _time_unit(t1 - t0)
    written: list[Path] = []

    def save(fig: Figure, name: str) -> None:
        path = out / f"{name}.{fmt}"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        written.append(path)

    # utilisation and queue length over time
    for name, title, ylabel, series in (
        ("utilization", "GPU utilisation over time", "busy GPUs (% of cluster)", "busy"),
        ("queue_length", "Queue length over time", "jobs waiting", "queue"),
    ):
        fig = Figure(figsize=(10, 4.5))
        ax = fig.add_subplot()
        for policy, run in results.items():
            tl = run.timeline
            vals = tl.busy_gpus if series == "busy" else tl.queue_len
            x, y = bin_average(tl.times, vals, t0, t1, PLOT_BINS)
            if series == "busy":
                y = 100.0 * y / max(1, tl.total_gpus)
            ax.plot((x - t0) / scale, y, label=policy, linewidth=1.0)
        width = (t1 - t0) / PLOT_BINS
        ax.set_title(f"{title} (averaged over {_human_s(width)} bins)")
        ax.set_xlabel(f"time since trace start ({unit})")
        ax.set_ylabel(ylabel)
        if series == "busy":
            ax.set_ylim(0, 105)
        else:
            ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
        save(fig, name)

    # CDF of waiting time
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    floor = 1.0
    for policy, run in results.items():
        waits = np.sort(
            np.fromiter(
                (o.first_start_time - o.submit_time for o in run.outcomes),
                dtype=float,
                count=len(run.outcomes),
            )
        )
        if waits.size == 0:
            continue
        q = np.linspace(0.0, 1.0, min(CDF_POINTS, waits.size))
        xs = np.maximum(np.quantile(waits, q), floor)
        ax.step(xs, q * 100.0, where="post", label=policy, linewidth=1.2)
    ax.set_xscale("log")
    ax.set_xlim(left=floor)
    ax.set_ylim(0, 100)
    ax.set_title("Waiting time CDF (waits under 1 s drawn at 1 s)")
    ax.set_xlabel("waiting time (s, log scale)")
    ax.set_ylabel("jobs (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    save(fig, "wait_cdf")
    return written


# --- tables -------------------------------------------------------------------------------


def _human_s(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


# (header, getter, formatter, better: "low" | "high" | None)
_COLUMNS: tuple[tuple[str, str, str, str | None], ...] = (
    ("jobs", "jobs", "int", None),
    ("wait", "avg_wait_s", "dur", "low"),
    ("p50", "p50_wait_s", "dur", "low"),
    ("p95", "p95_wait_s", "dur", "low"),
    (">8p95", "large_p95_wait_s", "dur", "low"),
    ("JCT", "avg_jct_s", "dur", "low"),
    ("BSLD", "avg_bounded_slowdown", "x", "low"),
    ("util", "utilization", "pct", "high"),
    ("Jain", "jain_fairness", "f3", "high"),
    ("span", "makespan_s", "dur", "low"),
)


def _fmt(kind: str, v: float) -> str:
    if kind == "int":
        return f"{int(v):,}"
    if kind == "dur":
        return _human_s(v).replace(" min", "m").replace(" ", "")
    if kind == "pct":
        return f"{100 * v:.1f}%"
    if kind == "x":
        return f"{v:,.1f}"
    return f"{v:.3f}"


def comparison_table(
    results: Mapping[str, PolicyRun] | Mapping[str, PolicyMetrics], *, title: str | None = None
) -> Table:
    """One row per policy; the best value of each column in bold green. Given runs (not
    bare metrics) it adds the simulator's wall time and speed. Short headers (explained in
    the caption) and compact units (s, m, h, d) keep it within ~110 columns."""
    from rich import box
    from rich.table import Table

    metrics: dict[str, PolicyMetrics] = {}
    runs: dict[str, PolicyRun] = {}
    for policy, r in results.items():
        if isinstance(r, PolicyMetrics):
            metrics[policy] = r
        else:
            runs[policy] = r
            metrics[policy] = r.metrics
    with_runs = len(runs) == len(metrics) and bool(runs)
    headers = ["policy", *(h for h, *_ in _COLUMNS)] + (["wall", "jobs/s"] if with_runs else [])

    best: dict[str, float] = {}
    for _h, attr, _k, better in _COLUMNS:
        vals = [float(getattr(m, attr)) for m in metrics.values()]
        if better and len(vals) > 1:
            best[attr] = min(vals) if better == "low" else max(vals)
    rows: list[list[tuple[str, bool]]] = []  # (text, is best)
    for policy, m in metrics.items():
        row: list[tuple[str, bool]] = [(policy, False)]
        for _h, attr, kind, _b in _COLUMNS:
            v = float(getattr(m, attr))
            is_best = attr in best and math.isclose(v, best[attr], rel_tol=1e-9, abs_tol=1e-12)
            row.append((_fmt(kind, v), is_best))
        if with_runs:
            run = runs[policy]
            row += [(f"{run.wall_seconds:.2f}s", False), (f"{run.jobs_per_second:,.0f}", False)]
        rows.append(row)

    table = Table(
        title=title or "Policy comparison",
        caption="wait: mean waiting time, p50/p95: its percentiles; >8p95: p95 wait of jobs "
        "with more than 8 GPUs; JCT: mean job completion "
        "time; BSLD: mean bounded slowdown; util: GPU utilisation; Jain: fairness index over "
        "projects; span: makespan; best in green",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for k, header in enumerate(headers):
        table.add_column(
            header,
            justify="left" if k == 0 else "right",
            style="bold cyan" if k == 0 else None,
            no_wrap=k > 0,  # numbers stay whole; a long policy name folds instead
            overflow="fold",
        )
    for row in rows:
        table.add_row(*(f"[bold green]{t}[/]" if b else t for t, b in row))
    return table


# row names of the configuration table (same metrics and order as _COLUMNS)
_LONG_NAMES = {
    "jobs": "jobs",
    "avg_wait_s": "mean wait",
    "p50_wait_s": "p50 wait",
    "p95_wait_s": "p95 wait",
    "large_p95_wait_s": "p95 wait, jobs > 8 GPUs",
    "avg_jct_s": "mean JCT",
    "avg_bounded_slowdown": "mean bounded slowdown",
    "utilization": "GPU utilisation",
    "jain_fairness": "Jain fairness",
    "makespan_s": "makespan",
}


def relative_changes(base: PolicyMetrics, other: PolicyMetrics) -> dict[str, float | None]:
    """Per metric of the comparison table: ``(other - base) / base`` (0.1 = 10 % more);
    None where the baseline is 0 and the other is not (no ratio exists)."""
    out: dict[str, float | None] = {}
    for _h, attr, _k, _b in _COLUMNS:
        b, o = float(getattr(base, attr)), float(getattr(other, attr))
        if b == 0:
            out[attr] = 0.0 if o == 0 else None
        else:
            out[attr] = (o - b) / abs(b)
    return out


def _change_text(change: float | None, better: str | None) -> str:
    if change is None:
        return " (new)"
    if abs(change) < 0.0005:
        return " (=)"
    text = f" ({100 * change:+.1f}%)" if abs(change) < 10 else f" ({1 + change:.1f}x)"
    if better is None:
        return text
    good = change < 0 if better == "low" else change > 0
    return f"[green]{text}[/]" if good else f"[red]{text}[/]"


def configuration_table(
    results: Mapping[str, PolicyRun] | Mapping[str, PolicyMetrics], *, title: str | None = None
) -> Table:
    """Side by side: one column per configuration (policy and parameter set), one row per
    metric; every column after the first also shows its change against the first (the
    baseline), green where it is better, red where it is worse."""
    from rich import box
    from rich.table import Table

    metrics = {
        name: r if isinstance(r, PolicyMetrics) else r.metrics for name, r in results.items()
    }
    if not metrics:
        raise InvalidInput(message="no results to compare", field="results")
    base_name = next(iter(metrics))
    base = metrics[base_name]
    table = Table(
        title=title or "Configurations side by side",
        caption=f"change against the first column ({base_name}): green better, red worse; "
        "JCT: job completion time; Jain: fairness index over projects",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("metric", style="bold cyan")
    for name in metrics:
        table.add_column(name, justify="right", overflow="fold")
    changes = {name: relative_changes(base, m) for name, m in metrics.items()}
    for _h, attr, kind, better in _COLUMNS:
        cells = [_LONG_NAMES.get(attr, attr)]
        for name, m in metrics.items():
            text = _fmt(kind, float(getattr(m, attr)))
            if name != base_name:
                text += _change_text(changes[name][attr], better)
            cells.append(text)
        table.add_row(*cells)
    return table


def project_table(metrics: PolicyMetrics, *, title: str | None = None) -> Table:
    """Per project: jobs, GPU-hours received vs share and entitlement, waits."""
    from rich.table import Table

    table = Table(title=title or "Projects", show_lines=False)
    for header in (
        "project",
        "jobs",
        "share",
        "GPU-hours",
        "received",
        "entitled GPU-hours",
        "received/entitled",
        "avg wait",
        "p95 wait",
    ):
        table.add_column(header, justify="left" if header == "project" else "right")
    for p in metrics.per_project:
        table.add_row(
            p.project,
            f"{p.jobs:,}",
            f"{100 * p.share:.1f} %",
            f"{p.gpu_hours:,.0f}",
            f"{100 * p.received_fraction:.1f} %",
            f"{p.entitled_gpu_hours:,.0f}",
            f"{p.fair_ratio:.2f}",
            _human_s(p.avg_wait_s),
            _human_s(p.p95_wait_s),
        )
    return table


def kind_table(results: Mapping[str, Any], *, title: str | None = None,
               first: str = "policy") -> Table | None:
    """Per run (policy, or policy and parameter set) and organisation kind: jobs, p50 /
    p90 / mean wait, received over entitled GPU-hours; ``first`` heads the run column.
    None when no run has kinds (the trace gives none)."""
    from rich.table import Table

    runs = {name: r.metrics for name, r in results.items() if r.metrics.per_kind}
    if not runs:
        return None
    table = Table(title=title or "Waits by organisation kind", show_lines=False)
    for k, header in enumerate((first, "kind", "projects", "jobs", "p50 wait", "p90 wait",
                                "avg wait", "received/entitled")):
        table.add_column(header, justify="left" if k < 2 else "right")
    for name, m in runs.items():
        for k in m.per_kind:
            table.add_row(name, k.kind, f"{k.projects:,}", f"{k.jobs:,}",
                          _human_s(k.p50_wait_s), _human_s(k.p90_wait_s),
                          _human_s(k.avg_wait_s), f"{k.fair_ratio:.2f}")
    return table
