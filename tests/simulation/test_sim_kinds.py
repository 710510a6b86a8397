"""Waits and fairness per organisation kind in the simulator: from ``compute_metrics``'
``kinds``, from a native trace's ``kind`` column, and from ``simulate --project-kinds``;
every wait worked out by hand."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rechenwerk.cli.main import app
from rechenwerk.simulation.metrics import JobOutcome, Timeline, compute_metrics
from rechenwerk.simulation.traces import Trace, TraceJob, read_trace, write_native_csv
from rechenwerk.simulation.traces.anonymise import Anonymiser
from rechenwerk.simulation.traces.base import TraceFormatError
from rechenwerk.simulation.traces.kinds import read_project_kinds

runner = CliRunner()


def _o(job: str, project: str, submit: float, start: float, run: float) -> JobOutcome:
    return JobOutcome(job, project, 1, submit, start, start + run, run)


def test_metrics_per_kind() -> None:
    # p1 waits 0 and 100; p2 10, 20, 30, 40; p3 (no kind) 5
    outcomes = [_o("a", "p1", 0, 0, 10), _o("b", "p1", 0, 100, 10),
                *(_o(f"c{i}", "p2", 0, w, 10) for i, w in enumerate((10, 20, 30, 40))),
                _o("d", "p3", 0, 5, 10)]
    m = compute_metrics(outcomes, Timeline([], [], [], 4),
                        kinds={"p1": "university", "p2": "sme"})
    got = {k.kind: (k.projects, k.jobs, k.p50_wait_s, k.p90_wait_s, k.avg_wait_s)
           for k in m.per_kind}
    assert got == {"(not given)": (1, 1, 5.0, 5.0, 5.0),
                   "sme": (1, 4, 25.0, pytest.approx(37.0), 25.0),
                   "university": (1, 2, 50.0, 90.0, 50.0)}
    by_project = {p.project: p for p in m.per_project}
    sme = next(k for k in m.per_kind if k.kind == "sme")
    assert sme.received_gpu_hours == pytest.approx(by_project["p2"].received_gpu_hours)
    assert sme.entitled_gpu_hours == pytest.approx(by_project["p2"].entitled_gpu_hours)
    assert sme.fair_ratio == pytest.approx(by_project["p2"].fair_ratio)
    assert m.to_dict()["per_kind"]["university"]["p90_wait_s"] == 90.0
    assert compute_metrics(outcomes, Timeline([], [], [], 4)).per_kind == ()


def test_native_kind_column(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("submit_time,duration_s,gpus,project,kind\n0,10,1,p1,sme\n"
                    "5,10,1,p1,\n6,10,1,p2,university\n7,10,1,p3,\n")
    jobs = read_trace(path).jobs
    # the row without a kind takes its project's; p3 has none
    assert [(j.project, j.kind) for j in jobs] == [
        ("p1", "sme"), ("p1", "sme"), ("p2", "university"), ("p3", None)]
    back = read_trace(write_native_csv(Trace(jobs, (), "t"), tmp_path / "back.csv")).jobs
    assert back == jobs
    assert "kind" not in write_native_csv(
        Trace((TraceJob("x", 0.0, 1.0, 1),), (), "t"), tmp_path / "none.csv").read_text()
    path.write_text("submit_time,duration_s,gpus,project,kind\n0,10,1,p1,sme\n"
                    "5,10,1,p1,startup\n")
    with pytest.raises(TraceFormatError, match=r"t.csv:3: column 'kind': project 'p1' has "
                       r"kind 'sme' on line 2"):
        read_trace(path)


def test_project_kinds_file_errors(tmp_path: Path) -> None:
    f = tmp_path / "kinds.csv"
    f.write_text("project,kind\np1,sme\np1,university\n")
    with pytest.raises(TraceFormatError, match=r"kinds\.csv:3: column 'kind'"):
        read_project_kinds(f)
    f.write_text("project,kind\np1,\n")
    with pytest.raises(TraceFormatError, match=r"kinds\.csv:2: column 'kind': missing value"):
        read_project_kinds(f)
    f.write_text("project,org\np1,x\n")
    with pytest.raises(TraceFormatError, match="missing required column"):
        read_project_kinds(f)


def test_simulate_project_kinds(tmp_path: Path) -> None:
    # one GPU, FIFO: A (p1) runs 0-100, B (p2, submitted at 1) 100-150, C (p2, at 10)
    # 150-160: waits A 0; B 99, C 140 -> p2: p50 119.5, p90 99 + 0.9 x 41 = 135.9
    trace = tmp_path / "t.csv"
    trace.write_text("job_id,submit_time,duration_s,gpus,project\nA,0,100,1,p1\n"
                     "B,1,50,1,p2\nC,10,10,1,p2\n")
    kinds = tmp_path / "kinds.csv"
    kinds.write_text("project,kind\np1,university\np2,startup\n")
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["simulate", "--trace", str(trace), "--cluster", "1x1",
                            "--policy", "fifo", "--project-kinds", str(kinds), "--json",
                            str(out)])
    assert r.exit_code == 0, r.output
    assert "Waits by organisation kind" in r.output
    per_kind = json.loads(out.read_text())["policies"]["fifo"]["per_kind"]
    assert per_kind["startup"]["jobs"] == 2
    assert per_kind["startup"]["p50_wait_s"] == pytest.approx(119.5)
    assert per_kind["startup"]["p90_wait_s"] == pytest.approx(135.9)
    assert per_kind["university"]["p90_wait_s"] == 0.0
    r = runner.invoke(app, ["simulate", "--trace", str(trace), "--cluster", "1x1",
                            "--project-kinds", str(tmp_path / "nope.csv")])
    assert r.exit_code != 0 and "Traceback" not in r.output and "nope.csv" in r.output


def test_native_user_and_kind_columns_together(tmp_path: Path) -> None:
    # either order in the header; each optional column written only when some job has it
    path = tmp_path / "both.csv"
    path.write_text("submit_time,duration_s,gpus,project,kind,user\n0,10,1,p1,sme,ann\n"
                    "5,10,1,p1,,bob\n6,10,1,p2,university,\n")
    jobs = read_trace(path).jobs
    assert [(j.user, j.kind) for j in jobs] == [("ann", "sme"), ("bob", "sme"),
                                                (None, "university")]
    out = write_native_csv(Trace(jobs, (), "t"), tmp_path / "back.csv")
    assert out.read_text().splitlines()[0].endswith(",user,kind")
    assert read_trace(out).jobs == jobs
    users_only = write_native_csv(Trace(tuple(replace(j, kind=None) for j in jobs), (), "t"),
                                  tmp_path / "users.csv")
    assert users_only.read_text().splitlines()[0].endswith(",user")
    assert [j.user for j in read_trace(users_only).jobs] == ["ann", "bob", None]
    kinds_only = write_native_csv(Trace(tuple(replace(j, user=None) for j in jobs), (), "t"),
                                  tmp_path / "kinds.csv")
    assert kinds_only.read_text().splitlines()[0].endswith(",gpu_type,kind")
    assert [j.kind for j in read_trace(kinds_only).jobs] == ["sme", "sme", "university"]
    anon = Anonymiser("salt").trace(read_trace(out))
    assert all(j.user is None or j.user.startswith("u") for j in anon.jobs)
    assert [j.kind for j in anon.jobs] == ["sme", "sme", "university"]


def test_simulate_params_compare_per_kind(tmp_path: Path) -> None:
    # the per-kind table and JSON per run when several --params are compared
    trace = tmp_path / "t.csv"
    trace.write_text("job_id,submit_time,duration_s,gpus,project,kind\nA,0,100,1,p1,sme\n"
                     "B,1,50,1,p2,university\nC,10,10,1,p2,university\n")
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["simulate", "--trace", str(trace), "--cluster", "1x1",
                            "--policy", "fifo", "--params", "defaults",
                            "--params", "again=defaults", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "Waits by organisation kind" in r.output and "fifo @ again" in r.output
    payload = json.loads(out.read_text())
    assert set(payload["policies"]) == {"fifo @ defaults", "fifo @ again"}
    for run in payload["policies"].values():
        # FIFO on one GPU: B waits 99, C 140; A 0
        assert run["per_kind"]["university"]["jobs"] == 2
        assert run["per_kind"]["university"]["avg_wait_s"] == pytest.approx(119.5)
        assert run["per_kind"]["sme"]["avg_wait_s"] == 0.0
    assert payload["change_vs_baseline"]["fifo @ again"]["avg_wait_s"] == 0.0
