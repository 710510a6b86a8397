"""``rechenwerk simulate``: several policies side by side, JSON, plots, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rechenwerk.cli.main import app
from rechenwerk.simulation.traces import Trace, TraceJob, write_native_csv

runner = CliRunner()


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    jobs = tuple(
        TraceJob(f"j{i}", i * 30.0, 200.0 + 50 * (i % 7), 1 + 3 * (i % 3), f"p{i % 3}")
        for i in range(120)
    )
    return write_native_csv(Trace(jobs, (), "test"), tmp_path / "t.csv")


def test_simulate_compares_policies_and_writes_json_and_plots(trace: Path, tmp_path: Path) -> None:
    out, plots = tmp_path / "out.json", tmp_path / "plots"
    r = runner.invoke(
        app,
        [
            "simulate",
            "--trace",
            str(trace),
            "--cluster",
            "4x8",
            "--policy",
            "fifo",
            "--policy",
            "multifactor+easy-backfill",
            "--policy",
            "las",
            "--walltime-factor",
            "2",
            "--json",
            str(out),
            "--plot-dir",
            str(plots),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "2 x run time" in " ".join(r.output.split())  # the walltime estimate is stated
    data = json.loads(out.read_text())
    assert set(data["policies"]) == {"fifo", "multifactor+easy-backfill", "las"}
    for m in data["policies"].values():
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
            assert key in m
        assert m["jobs"] == 120 and 0 < m["utilization"] <= 1
    assert data["walltime_estimate"].startswith("walltime estimate = 2 x")
    assert len(list(plots.glob("*.png"))) >= 3


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--policy", "sjf"], "unknown scheduling policy"),
        (["--cluster", "banana"], "neither NODESxGPUS"),
        (["--walltime-factor", "0.5"], "--walltime-factor"),
        (["--cluster", "1x2"], "requests 4 GPUs"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(trace: Path, args: list[str], needle: str) -> None:
    r = runner.invoke(app, ["simulate", "--trace", str(trace), *args])
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())  # Rich wraps at the terminal width
    assert needle in text and "Traceback" not in text


def test_missing_trace_file(tmp_path: Path) -> None:
    r = runner.invoke(app, ["simulate", "--trace", str(tmp_path / "nope.csv")])
    assert r.exit_code == 2 and "does not exist" in " ".join(r.output.split())
