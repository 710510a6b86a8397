"""Metrics and report on real engine runs (small generated trace and a Philly slice)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from rechenwerk.simulation.cluster import load_cluster
from rechenwerk.simulation.engine import run_simulation
from rechenwerk.simulation.report import PolicyRun, comparison_table, run_to_dict, write_plots
from rechenwerk.simulation.traces import read_trace
from rechenwerk.simulation.traces.generator import generate_llm_workload

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def runs() -> dict[str, PolicyRun]:
    trace = generate_llm_workload(seed=3, days=2, total_gpus=64, large_min_gpus=16)
    cluster = load_cluster("8x8")
    return {p: run_simulation(trace.jobs, cluster, p) for p in ("fifo", "easy-backfill", "las")}


def test_timeline_and_outcomes_agree(runs: dict[str, PolicyRun]) -> None:
    for run in runs.values():
        m = run.metrics
        assert m.jobs == len(run.outcomes) > 0
        # the time-integral of busy GPUs equals the GPU-time the jobs held
        held = (m.gpu_hours + m.lost_gpu_hours) * 3600 / (m.total_gpus * m.makespan_s)
        assert m.utilization == pytest.approx(held, rel=1e-9)
        assert 0 < m.utilization <= 1 and 0 < m.jain_fairness <= 1
        assert m.p50_wait_s <= m.p90_wait_s <= m.p95_wait_s <= m.max_wait_s
        assert m.avg_bounded_slowdown >= 1
        assert sum(p.jobs for p in m.per_project) == m.jobs
        assert sum(p.received_fraction for p in m.per_project) == pytest.approx(1.0)


def test_plots_and_table_from_engine_results(runs: dict[str, PolicyRun], tmp_path: Path) -> None:
    paths = write_plots(runs, tmp_path)
    assert len(paths) == 3 and all(p.stat().st_size > 10_000 for p in paths)
    console = Console(record=True, width=220)
    console.print(comparison_table(runs))
    text = console.export_text()
    assert all(p in text for p in runs) and "jobs/s" in text
    d = run_to_dict(runs["fifo"])
    for key in (
        "jobs",
        "avg_jct_s",
        "p50_wait_s",
        "p95_wait_s",
        "utilization",
        "jain_fairness",
        "makespan_s",
        "wall_seconds",
        "jobs_per_second",
    ):
        assert key in d


def test_philly_fixture_never_waits_on_an_ample_cluster() -> None:
    trace = read_trace(DATA / "philly_small.csv", "philly")
    r = run_simulation(trace.jobs, load_cluster("2x8"), "fifo")
    assert r.metrics.max_wait_s == 0 and r.metrics.avg_bounded_slowdown == 1
