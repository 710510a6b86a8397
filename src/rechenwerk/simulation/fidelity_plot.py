"""Scatter plot of simulated against real start times (``rechenwerk twin validate``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rechenwerk.simulation.fidelity import Fidelity, JobTimes


def scatter(
    real: Mapping[str, JobTimes],
    sims: Mapping[str, Mapping[str, JobTimes]],
    figures: Mapping[str, Fidelity],
    path: Path,
    *,
    title: str,
) -> Path:
    """One panel per simulator variant; the diagonal is a perfect twin."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2 * len(sims), 5.0), dpi=110)
    top = max(
        [r.start for r in real.values()]
        + [s.start for v in sims.values() for s in v.values()]
        + [1.0]
    )
    for i, (name, sim) in enumerate(sims.items()):
        ax = fig.add_subplot(1, len(sims), i + 1)
        common = sorted(real.keys() & sim.keys())
        ax.scatter(
            [real[j].start for j in common],
            [sim[j].start for j in common],
            s=10,
            alpha=0.7,
            c=[real[j].gpus for j in common],
            cmap="viridis",
        )
        ax.plot([0, top], [0, top], color="grey", lw=1, ls="--")
        f = figures[name]
        ax.set_title(
            f"{name}: err p50 {f.median_abs_error_s:.1f}s "
            f"({100 * f.median_rel_error:.0f}% of wait), rho {f.spearman:.3f}",
            fontsize=9,
        )
        ax.set_xlabel("real start (s from replay start, sacct)")
        ax.set_ylabel("simulated start (s)")
        ax.set_xlim(0, top * 1.02)
        ax.set_ylim(0, top * 1.02)
    fig.suptitle(title + " (colour: GPUs)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
