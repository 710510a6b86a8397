"""``rechenwerk trace generate|stats``."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rechenwerk.cli.main import app
from rechenwerk.simulation.traces import read_trace

DATA = Path(__file__).parent / "data"
runner = CliRunner()


def test_generate_writes_a_readable_trace_and_is_seeded(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    args = ["trace", "generate", "--seed", "5", "--days", "2", "--gpus", "128"]
    r = runner.invoke(app, [*args, "--out", str(a), "--json"])
    assert r.exit_code == 0, r.output
    stats = json.loads(r.stdout)
    assert stats["path"] == str(a) and stats["jobs"] > 50
    assert runner.invoke(app, [*args, "--out", str(b)]).exit_code == 0
    assert a.read_text() == b.read_text()
    assert a.read_text().startswith("# Synthetic LLM-era workload")
    assert len(read_trace(a).jobs) == stats["jobs"]


def test_stats_json_and_skip_invalid() -> None:
    path = DATA / "native_bad_gpus.csv"
    r = runner.invoke(app, ["trace", "stats", str(path)])
    assert r.exit_code == 2
    assert "native_bad_gpus.csv:3: column 'gpus'" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["trace", "stats", str(path), "--skip-invalid", "--json"])
    assert r.exit_code == 0, r.output
    st = json.loads(r.stdout)
    assert st["jobs"] == 2 and st["skipped_rows"] == 1
    assert st["skipped"] == [f"{path}:3: column 'gpus': expected a positive integer, got 'x'"]


def test_stats_philly_table() -> None:
    r = runner.invoke(app, ["trace", "stats", str(DATA / "philly_small.csv"), "-f", "philly"])
    assert r.exit_code == 0, r.output
    assert "6214e9" in r.output and "GPU-hours" in r.output


def test_bad_inputs_give_one_line_errors(tmp_path: Path) -> None:
    r = runner.invoke(app, ["trace", "generate", "--gpus", "100", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "multiple of gpus_per_node" in r.output
    r = runner.invoke(app, ["trace", "stats", str(tmp_path / "missing.csv")])
    assert r.exit_code == 3 and "trace file not found" in r.output
    r = runner.invoke(app, ["trace", "stats", str(DATA / "philly_small.csv"), "-f", "swf"])
    assert r.exit_code == 2 and "unknown trace format" in r.output


def test_convert_philly_to_native(tmp_path: Path) -> None:
    out = tmp_path / "ph.csv"
    r = runner.invoke(app, ["trace", "convert", str(DATA / "philly_small.csv"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "wrote 4 jobs" in r.output
    assert read_trace(out).jobs == read_trace(DATA / "philly_small.csv", "philly").jobs
