"""Report: resampling, plots written and non-empty, comparison table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from rechenwerk.errors import InvalidInput
from rechenwerk.simulation.metrics import JobOutcome, PolicyMetrics, Timeline, compute_metrics
from rechenwerk.simulation.report import (
    bin_average,
    comparison_table,
    project_table,
    run_to_dict,
    write_plots,
)


@dataclass(frozen=True)
class FakeRun:
    outcomes: Sequence[JobOutcome]
    timeline: Timeline
    metrics: PolicyMetrics
    wall_seconds: float
    jobs_per_second: float


def make_run(n: int, delay: float, seed: int, points: int = 1000) -> FakeRun:
    """n one-GPU jobs on a 4-GPU cluster; a step timeline of ``points`` samples."""
    rng = np.random.default_rng(seed)
    submit = np.sort(rng.uniform(0, 86_400 * 3, n))
    wait = rng.exponential(delay, n)
    dur = rng.exponential(600, n)
    outcomes = [
        JobOutcome(f"j{i}", f"p{i % 3}", 1, float(s), float(s + w), float(s + w + d), float(d))
        for i, (s, w, d) in enumerate(zip(submit, wait, dur, strict=True))
    ]
    times = np.sort(rng.uniform(0, 86_400 * 3, points))
    busy = rng.integers(0, 5, points)
    queue = rng.integers(0, 50, points)
    tl = Timeline(
        times=times.tolist(), busy_gpus=busy.tolist(), queue_len=queue.tolist(), total_gpus=4
    )
    return FakeRun(outcomes, tl, compute_metrics(outcomes, tl), 0.5, n / 0.5)


def test_bin_average_is_exact_for_steps() -> None:
    # 2 on [0,10), 4 on [10,20), 0 after; bins of 5 over [0, 30)
    x, y = bin_average([0, 10, 20], [2, 4, 0], 0, 30, 6)
    assert list(x) == [2.5, 7.5, 12.5, 17.5, 22.5, 27.5]
    assert list(y) == [2, 2, 4, 4, 0, 0]
    # a bin straddling a change averages it; value 0 before the first sample
    _, y = bin_average([5, 15], [1, 3], 0, 20, 2)
    assert list(y) == pytest.approx([0.5, 2.0])


def test_write_plots_and_table(tmp_path: Path) -> None:
    runs = {
        "fifo": make_run(20_000, 3_600, 1, points=200_000),
        "las": make_run(20_000, 600, 2, points=200_000),
    }
    paths = write_plots(runs, tmp_path / "plots")
    assert [p.name for p in paths] == ["utilization.png", "queue_length.png", "wait_cdf.png"]
    for p in paths:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000

    console = Console(record=True, width=200)
    console.print(comparison_table(runs))
    text = console.export_text()
    assert "fifo" in text and "las" in text and "jobs/s" in text and "40,000" in text
    console.print(comparison_table({k: r.metrics for k, r in runs.items()}, title="T"))
    console.print(project_table(runs["fifo"].metrics))
    text = console.export_text()
    assert "p0" in text and "33.3 %" in text

    d = run_to_dict(runs["las"])
    assert d["wall_seconds"] == 0.5 and d["jobs_per_second"] == 40_000
    assert d["jobs"] == 20_000 and "p95_wait_s" in d


def test_svg_and_errors(tmp_path: Path) -> None:
    runs = {"fifo": make_run(200, 60, 3)}
    paths = write_plots(runs, tmp_path, fmt="svg")
    assert all(p.suffix == ".svg" and p.stat().st_size > 1000 for p in paths)
    with pytest.raises(InvalidInput, match="unknown plot format"):
        write_plots(runs, tmp_path, fmt="gif")
    with pytest.raises(InvalidInput, match="no policy results"):
        write_plots({}, tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InvalidInput, match="cannot create plot directory"):
        write_plots(runs, blocker / "sub")
