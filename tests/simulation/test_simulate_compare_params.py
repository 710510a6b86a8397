"""`rechenwerk simulate --params A --params B`: the same trace under two parameter sets,
side by side in one table, one JSON and one set of plots; on a trace small enough to check
by hand.

One GPU; j0 (project a) runs 0-100 s; j1 (a, QOS low, 300 s) and j2 (b, QOS high, 10 s)
wait for it. With the built-in weights QOS and fair share put j2 first: j2 starts at 100
(wait 98), j1 at 110 (wait 109), mean wait (0 + 98 + 109) / 3 = 69 s. With fair share and
QOS weighted 0 only age is left, the older j1 goes first: j1 at 100 (wait 99), j2 at 400
(wait 398), mean (0 + 99 + 398) / 3 = 165.67 s, +140.1 %. The makespan is 410 s either way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rechenwerk.cli.main import app

runner = CliRunner()
TRACE = """job_id,submit_time,duration_s,gpus,project,qos
j0,0,100,1,a,normal
j1,1,300,1,a,low
j2,2,10,1,b,high
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    trace = tmp_path / "history.csv"
    trace.write_text(TRACE)
    changed = tmp_path / "changed.yaml"
    changed.write_text("weight_fairshare: 0\nweight_qos: 0\n")
    current = tmp_path / "current.yaml"
    current.write_text("# the live scheduler's file: built-in weights\n")
    return {"trace": trace, "changed": changed, "current": current, "dir": tmp_path}


def _simulate(*args: str) -> tuple[int, str]:
    r = runner.invoke(app, ["simulate", "--cluster", "1x1", "--policy", "multifactor", *args])
    return r.exit_code, r.output


def test_two_parameter_sets_side_by_side(files: dict[str, Path]) -> None:
    out, plots = files["dir"] / "out.json", files["dir"] / "plots"
    code, output = _simulate("--trace", str(files["trace"]), "--params", str(files["current"]),
                             "--params", str(files["changed"]), "--json", str(out),
                             "--plot-dir", str(plots))
    assert code == 0, output
    # one table, a column per configuration, the change against the first
    assert "multifactor @ current" in output and "multifactor @ changed" in output
    wait_row = next(line for line in output.splitlines() if "mean wait" in line)
    assert "69s" in wait_row and "2.8m (+140.1%)" in wait_row
    span_row = next(line for line in output.splitlines() if "makespan" in line)
    assert "(=)" in span_row
    doc = json.loads(out.read_text())
    runs = doc["policies"]
    assert list(runs) == ["multifactor @ current", "multifactor @ changed"]
    assert runs["multifactor @ current"]["avg_wait_s"] == pytest.approx(69.0)
    assert runs["multifactor @ changed"]["avg_wait_s"] == pytest.approx(497 / 3)
    assert runs["multifactor @ changed"]["makespan_s"] == runs["multifactor @ current"][
        "makespan_s"] == pytest.approx(410.0)
    assert doc["baseline"] == "multifactor @ current"
    assert doc["params"] == {"current": str(files["current"]), "changed": str(files["changed"])}
    assert doc["runs"]["multifactor @ changed"] == {"policy": "multifactor", "params": "changed"}
    change = doc["change_vs_baseline"]["multifactor @ changed"]
    assert change["avg_wait_s"] == pytest.approx((497 / 3 - 69) / 69)
    assert change["makespan_s"] == 0.0
    assert sorted(p.name for p in plots.iterdir()) == [
        "queue_length.png", "utilization.png", "wait_cdf.png"]


def test_labels_defaults_and_several_policies(files: dict[str, Path]) -> None:
    out = files["dir"] / "out.json"
    code, output = _simulate("--trace", str(files["trace"]), "--policy", "fifo",
                             "--params", "defaults", "--params",
                             f"no-fairshare={files['changed']}", "--json", str(out))
    assert code == 0, output
    doc = json.loads(out.read_text())
    assert list(doc["policies"]) == ["multifactor @ defaults", "multifactor @ no-fairshare",
                                     "fifo @ defaults", "fifo @ no-fairshare"]
    assert doc["params"] == {"defaults": None, "no-fairshare": str(files["changed"])}
    fifo = doc["change_vs_baseline"]["fifo @ defaults"]
    # fifo runs j1 before j2 whatever the weights: the age-only order
    assert doc["policies"]["fifo @ no-fairshare"]["avg_wait_s"] == pytest.approx(497 / 3)
    assert fifo["avg_wait_s"] == pytest.approx((497 / 3 - 69) / 69)


def test_one_parameter_set_keeps_the_policy_table(files: dict[str, Path]) -> None:
    out = files["dir"] / "out.json"
    code, output = _simulate("--trace", str(files["trace"]), "--params", str(files["changed"]),
                             "--json", str(out))
    assert code == 0, output
    doc = json.loads(out.read_text())
    assert list(doc["policies"]) == ["multifactor"] and "baseline" not in doc
    assert doc["policies"]["multifactor"]["avg_wait_s"] == pytest.approx(497 / 3)


def test_bad_parameter_sets_are_clear_errors(files: dict[str, Path]) -> None:
    trace = str(files["trace"])
    code, output = _simulate("--trace", trace, "--params", f"x={files['changed']}",
                             "--params", f"x={files['current']}")
    assert code == 2 and "two parameter sets are labelled 'x'" in output
    code, output = _simulate("--trace", trace, "--params", "x=")
    assert code == 2 and "no file after '='" in output
    bad = files["dir"] / "bad.yaml"
    bad.write_text("weight_fairshar: 0\n")
    code, output = _simulate("--trace", trace, "--params", "defaults", "--params", str(bad))
    assert code == 2 and "weight_fairshar" in output
    code, output = _simulate("--trace", trace, "--params", str(files["dir"] / "nope.yaml"))
    assert code == 2 and "cannot read scheduling parameters" in output
    assert "Traceback" not in output


def test_imported_history_replays_under_two_settings(files: dict[str, Path]) -> None:
    """The operator's path: sacct --json -> anonymised native trace -> two settings."""
    sacct = Path(__file__).parent / "data" / "sacct_json_v0.0.38_derived.json"
    history = files["dir"] / "q.csv"
    r = runner.invoke(app, ["trace", "import", "--sacct", str(sacct), "--out", str(history),
                            "--anonymise", "--salt", "q3", "--until", "2026-12-02T08:00:00Z"])
    assert r.exit_code == 0, r.output
    out = files["dir"] / "q.json"
    r = runner.invoke(app, ["simulate", "--trace", str(history), "--cluster", "2x4:a100",
                            "--policy", "multifactor+easy-backfill",
                            "--params", f"current={files['current']}",
                            "--params", f"changed={files['changed']}", "--json", str(out)])
    assert r.exit_code == 0, r.output
    runs = json.loads(out.read_text())["policies"]
    assert list(runs) == ["multifactor+easy-backfill @ current",
                          "multifactor+easy-backfill @ changed"]
    assert all(run["jobs"] == 7 for run in runs.values())
