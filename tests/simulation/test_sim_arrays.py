"""Job arrays in the trace format and the simulator: a native row with ``array`` expands
to one task per index (ids ``<job_id>_<index>``), written back the same, and the
simulator never runs more than an array's %N tasks at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from rechenwerk.errors import InvalidInput
from rechenwerk.simulation.cluster import uniform_cluster
from rechenwerk.simulation.engine import run_simulation
from rechenwerk.simulation.traces import read_trace
from rechenwerk.simulation.traces.native import write_native_csv


def _trace(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "t.csv"
    path.write_text("job_id,submit_time,duration_s,gpus,array\n" + body)
    return path


def test_rows_with_an_array_expand_and_round_trip(tmp_path: Path) -> None:
    trace = read_trace(_trace(tmp_path, "sweep,0,100,1,0-4:2%2\nsolo,5,10,2,\n"))
    assert [j.job_id for j in trace.jobs] == ["sweep_0", "sweep_2", "sweep_4", "solo"]
    assert {(j.array_id, j.array_limit) for j in trace.jobs[:3]} == {("sweep", 2)}
    assert trace.jobs[3].array_id is None
    out = write_native_csv(trace, tmp_path / "back.csv")
    assert read_trace(out).jobs == trace.jobs
    assert "array" in out.read_text().splitlines()[0]


def test_a_bad_array_names_the_column(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="array"):
        read_trace(_trace(tmp_path, "sweep,0,100,1,5-1\n"))
    skipped = read_trace(_trace(tmp_path, "a,0,1,1,0-1\nb,0,1,1,x\n"), skip_invalid=True)
    assert [j.job_id for j in skipped.jobs] == ["a_0", "a_1"]
    assert skipped.skipped[0].column == "array"


@pytest.mark.parametrize("policy", ["fifo", "easy-backfill", "multifactor"])
def test_the_simulator_honours_the_limit(tmp_path: Path, policy: str) -> None:
    trace = read_trace(_trace(tmp_path, "sweep,0,100,1,0-9%3\nother,0,100,1,\n"))
    result = run_simulation(trace.jobs, uniform_cluster(1, 8), policy, strict=True)
    tasks = [o for o in result.outcomes if o.job_id.startswith("sweep_")]
    assert len(tasks) == 10
    # at every moment at most 3 tasks of the array run (8 GPUs would fit 8)
    moments = sorted({o.first_start_time for o in tasks})
    for t in moments:
        running = [o for o in tasks if o.first_start_time <= t < o.end_time]
        assert len(running) <= 3
    assert max(len([o for o in tasks if o.first_start_time <= t < o.end_time])
               for t in moments) == 3
    # 10 tasks of 100 s, 3 at a time: four waves
    assert max(o.end_time for o in tasks) == pytest.approx(400.0)
    other = next(o for o in result.outcomes if o.job_id == "other")
    assert other.first_start_time == 0.0  # the limit holds back only the array


def test_without_a_limit_tasks_run_as_the_cluster_allows(tmp_path: Path) -> None:
    trace = read_trace(_trace(tmp_path, "sweep,0,100,1,0-9\n"))
    result = run_simulation(trace.jobs, uniform_cluster(1, 8), "fifo", strict=True)
    assert max(o.end_time for o in result.outcomes) == pytest.approx(200.0)
