"""The simulator honours advance reservations: nothing runs into a window that holds the
whole cluster, a partial one caps what runs beside it; the YAML file and CLI option."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rechenwerk.cli.main import app
from rechenwerk.errors import InvalidInput
from rechenwerk.simulation.cluster import load_cluster
from rechenwerk.simulation.engine import run_simulation
from rechenwerk.simulation.reservations_file import parse_reservations
from rechenwerk.simulation.traces import Trace, TraceJob, write_native_csv

CLUSTER = load_cluster("2x8")
JOBS = [TraceJob(f"j{i}", i * 100.0, 700.0 + 90 * (i % 5), (1, 4, 8, 2)[i % 4], "p",
                 walltime_s=1000.0) for i in range(60)]
NO_PREEMPTION = ["fifo", "easy-backfill", "conservative-backfill", "multifactor",
                 "multifactor+easy-backfill", "multifactor+conservative-backfill"]


@pytest.mark.parametrize("policy", NO_PREEMPTION)
def test_nothing_runs_into_a_whole_cluster_maintenance(policy: str) -> None:
    held = parse_reservations({"reservations": [
        {"name": "m", "start": "1h", "duration": "2h", "nodes": ["node1", "node2"],
         "maintenance": True}]}, CLUSTER, "test")
    r = run_simulation(JOBS, CLUSTER, policy, reservations=held, strict=True)
    assert len(r.outcomes) == len(JOBS)
    s, e = 3600.0, 3 * 3600.0
    for o in r.outcomes:
        # jobs run without preemption: [first start, end) is their whole run
        assert o.end_time <= s or o.first_start_time >= e, o
    assert any(o.first_start_time >= e for o in r.outcomes)  # the window really delayed some
    plain = run_simulation(JOBS, CLUSTER, policy, strict=True)
    assert max(o.end_time for o in plain.outcomes) < max(o.end_time for o in r.outcomes)


def test_partial_reservation_caps_the_gpus_beside_it() -> None:
    held = parse_reservations({"reservations": [
        {"name": "hero", "start": 0, "end": "10h", "gpus": 8, "projects": ["x"]}]},
        CLUSTER, "test")
    r = run_simulation(JOBS, CLUSTER, "easy-backfill", reservations=held, strict=True)
    assert len(r.outcomes) == len(JOBS)
    spans = [(o.first_start_time, o.end_time, o.gpus) for o in r.outcomes]
    for t, _, _ in spans:  # at any start, at most the 8 unreserved GPUs are in use
        assert sum(g for s, e, g in spans if s <= t < e) <= 8


@pytest.mark.parametrize(("doc", "needle"), [
    ({"reservations": [{"name": "a", "start": 0, "nodes": ["node1"], "maintenance": True}]},
     "either 'end' or 'duration'"),
    ({"reservations": [{"start": 0, "end": "1h", "gpus": 17, "maintenance": True}]},
     "only 16 are not reserved"),
    ({"reservations": [{"start": 0, "end": "1h", "nodes": ["node9"], "maintenance": True}]},
     "unknown node"),
    ({"reservations": [{"start": "soon", "end": "1h", "gpus": 1, "maintenance": True}]},
     "cannot read 'soon'"),
    ({"reservations": [{"start": 0, "end": "1h", "gpus": 1}]}, "'maintenance: true'"),
    ({"reservations": [{"start": 0, "end": "1h", "gpus": 1, "maintenance": True,
                        "colour": "red"}]}, "unknown keys"),
    ({"nope": 1}, "a list 'reservations'"),
])
def test_bad_reservation_files(doc: object, needle: str) -> None:
    with pytest.raises(InvalidInput, match=needle):
        parse_reservations(doc, CLUSTER, "f.yaml")


def test_cli_option(tmp_path: Path) -> None:
    trace = write_native_csv(Trace(tuple(JOBS), (), "test"), tmp_path / "t.csv")
    good = tmp_path / "r.yaml"
    good.write_text("reservations:\n  - {name: m, start: 1h, duration: 2h, gpus: 16, "
                    "maintenance: true}\n")
    runner = CliRunner()
    ok = runner.invoke(app, ["simulate", "--trace", str(trace), "--cluster", "2x8",
                             "--policy", "easy-backfill", "--reservations", str(good)])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("reservations:\n  - {name: m, start: 1h, duration: 2h, gpus: 99, "
                   "maintenance: true}\n")
    r = runner.invoke(app, ["simulate", "--trace", str(trace), "--cluster", "2x8",
                            "--reservations", str(bad)])
    assert r.exit_code == 2 and "only 16 are not reserved" in r.output
    assert "Traceback" not in r.output
