"""`rechenwerk trace import --sacct` with `sacct --json` output, every data format:

- v0.0.40, v0.0.41, v0.0.42: RECORDED on the real Slurm 24.11.5 dev cluster
  (tests/slurm/fixtures/slurm-24.11/cli, see its README);
- the envelopes of Slurm 22.05.8 (v0.0.38) and 24.11.5 (v0.0.42) with no job: RECORDED here
  (tests/simulation/data/sacct_json_slurm*_empty.json; both accounting databases were empty);
- v0.0.38 jobs: DERIVED from the recorded `sacct -P` file of the 22.05 cluster
  (sacct_json_v0.0.38_derived.json, its `_derived` note says how);
- v0.0.39: DERIVED from SchedMD's spec (tests/slurm/fixtures/slurm-23.02-derived).

Parsing is the Slurm backend's own (execution/slurm/v0_0_*.parse_accounted_jobs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rechenwerk.cli.main import app
from rechenwerk.execution.slurm.sacct_trace import detect_format, read_sacct_json
from rechenwerk.simulation.traces import TraceFormatError, read_trace
from rechenwerk.simulation.traces.history import ImportSummary

TESTS = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
REC_2411 = TESTS / "slurm" / "fixtures" / "slurm-24.11" / "cli"
DERIVED_2302 = TESTS / "slurm" / "fixtures" / "slurm-23.02-derived" / "sacct.json"
V38 = DATA / "sacct_json_v0.0.38_derived.json"
PARSABLE = DATA / "sacct_parsable2_slurm22.txt"
runner = CliRunner()


def _import(*args: str) -> tuple[int, str]:
    r = runner.invoke(app, ["trace", "import", *args])
    return r.exit_code, r.output


@pytest.mark.parametrize("version", ["v0.0.40", "v0.0.41", "v0.0.42"])
def test_recorded_2411_output_in_every_format(version: str, tmp_path: Path) -> None:
    path = REC_2411 / f"sacct-finished-{version}.json"
    summary = ImportSummary()
    jobs, found = read_sacct_json(path, summary)
    assert found == version  # from meta.plugin.data_parser
    by_id = {j.job_id: j for j in jobs}
    assert sorted(by_id) == ["21", "26", "27", "28"] and not summary.left_out
    two = by_id["21"]  # the 2-GPU job, cancelled after 2 s of its 5 min limit
    assert (two.gpus, two.gpu_type, two.gpus_per_node, two.walltime_s, two.duration_s) == (
        2, "a100", 2, 300.0, 2.0)
    assert (two.project, two.user, two.qos) == ("root", "root", "normal")
    assert by_id["26"].submit_epoch - two.submit_epoch == 2.0
    out = tmp_path / "h.csv"
    code, output = _import("--sacct", str(path), "--out", str(out))
    assert code == 0, output
    assert f"data format {version}" in output
    trace = read_trace(out)
    assert [(j.job_id, j.gpus, j.user) for j in trace.jobs] == [
        ("21", 2, "root"), ("26", 1, "root"), ("27", 1, "root"), ("28", 1, "root")]


@pytest.mark.parametrize("version", ["v0.0.40", "v0.0.41", "v0.0.42"])
def test_recorded_live_output_counts_what_it_leaves_out(version: str) -> None:
    summary = ImportSummary()
    jobs, _ = read_sacct_json(REC_2411 / f"sacct-{version}.json", summary)
    # 17-20 ran without a GPU, 21 and array task 25 still run, 22/23/24 pend
    assert jobs == []
    assert summary.left_out == {"no GPUs": 4, "still running": 2, "never started": 3}
    summary = ImportSummary()  # sacct -D: the requeued job 24's runs are one job
    jobs, _ = read_sacct_json(REC_2411 / f"sacct-duplicates-{version}.json", summary)
    assert jobs == [] and summary.left_out == {"never started": 1}


def test_v0_0_38_json_gives_the_same_trace_as_parsable2_plus_users(tmp_path: Path) -> None:
    a, b = tmp_path / "json.csv", tmp_path / "p2.csv"
    for src, out in ((V38, a), (PARSABLE, b)):
        code, output = _import("--sacct", str(src), "--out", str(out), "--anonymise",
                               "--salt", "s")
        assert code == 0, output
    from_json, from_p2 = read_trace(a).jobs, read_trace(b).jobs
    assert len(from_json) == 7
    assert [j.__class__(**{**_fields(j), "user": None}) for j in from_json] == list(from_p2)
    assert {j.user for j in from_json} == {read_trace(a).jobs[0].user}
    assert str(from_json[0].user).startswith("u") and "rwtest" not in a.read_text()


def _fields(job: object) -> dict[str, object]:
    return {k: getattr(job, k) for k in job.__slots__}  # type: ignore[attr-defined]


def test_v0_0_39_without_meta_needs_the_format_named(tmp_path: Path) -> None:
    out = tmp_path / "h.csv"
    code, output = _import("--sacct", str(DERIVED_2302), "--out", str(out))
    assert code == 2 and "cannot tell which Slurm data format" in output
    assert "--sacct-format" in output and "Traceback" not in output and not out.exists()
    code, output = _import("--sacct", str(DERIVED_2302), "--sacct-format", "v0.0.39",
                           "--out", str(out), "--json")
    assert code == 0, output
    result = json.loads(output)
    assert (result["jobs"], result["sacct_format"], result["users"]) == (2, "v0.0.39", 1)
    assert result["left_out"] == {"no GPUs": 1}


@pytest.mark.parametrize(("name", "version"), [("sacct_json_slurm22_empty.json", "v0.0.38"),
                                               ("sacct_json_slurm2411_empty.json", "v0.0.42")])
def test_recorded_empty_answers(name: str, version: str, tmp_path: Path) -> None:
    doc = json.loads((DATA / name).read_text())
    found = detect_format(doc)
    assert found is not None
    assert str(found.VERSION) == version
    code, output = _import("--sacct", str(DATA / name), "--out", str(tmp_path / "x.csv"))
    assert code == 2 and "no job to import" in output  # 22.05's "Nothing found" is no error


def test_neither_json_nor_parsable2_is_one_clear_error(tmp_path: Path) -> None:
    csv = tmp_path / "jobs.csv"
    csv.write_text("job,gpus\n1,2\n")
    code, output = _import("--sacct", str(csv), "--out", str(tmp_path / "o.csv"))
    assert code == 2 and "is neither sacct --json output" in output
    bad = tmp_path / "cut.json"
    bad.write_text('{"jobs": [\n')
    code, output = _import("--sacct", str(bad), "--out", str(tmp_path / "o.csv"))
    assert code == 2 and "cut.json:2: not valid JSON" in output
    code, output = _import("--sacct", str(V38), "--sacct-format", "v0.0.99",
                           "--out", str(tmp_path / "o.csv"))
    assert code == 2 and "unknown format 'v0.0.99'" in output
    code, output = _import("--sacct", str(V38), "--sacct-format", "parsable2",
                           "--out", str(tmp_path / "o.csv"))
    assert code == 2 and "not sacct --parsable2 output" in output
    for fmt in ("parsable2", "json", "auto"):  # a missing file, whatever the format
        code, output = _import("--sacct", str(tmp_path / "nope.txt"), "--sacct-format", fmt,
                               "--out", str(tmp_path / "o.csv"))
        assert code == 3 and "trace file not found" in output, output
    code, output = _import("--from-db", "--sacct-format", "json", "--out", str(tmp_path / "o"))
    assert code == 2 and "--sacct-format needs --sacct" in output
    assert "Traceback" not in output


def test_sacct_error_in_the_output_stops_the_import(tmp_path: Path) -> None:
    doc = json.loads(V38.read_text())
    doc["errors"] = [{"description": "Unable to connect to database", "error_number": 7000}]
    path = tmp_path / "err.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(TraceFormatError, match=r"sacct reported an error.*Unable to connect"):
        read_sacct_json(path, ImportSummary())


def test_since_until_apply_to_json_too() -> None:
    summary = ImportSummary()
    jobs, _ = read_sacct_json(V38, summary, since=1796196690.0)  # 2026-12-02T07:31:30Z
    assert [j.job_id for j in jobs] == ["340"]
    assert summary.left_out == {"submitted outside --since/--until": 6, "still running": 1}


def test_native_user_column_round_trips_and_is_optional(tmp_path: Path) -> None:
    from rechenwerk.simulation.traces.base import Trace, TraceJob
    from rechenwerk.simulation.traces.native import write_native_csv

    jobs = (TraceJob("a", 0.0, 10.0, 1, user="greta"), TraceJob("b", 5.0, 10.0, 2))
    path = write_native_csv(Trace(jobs, (), "t"), tmp_path / "u.csv")
    assert path.read_text().splitlines()[0].endswith(",user")
    assert read_trace(path).jobs == jobs  # b: no user, read back as None
    plain = write_native_csv(Trace((TraceJob("c", 0.0, 1.0, 1),), (), "t"), tmp_path / "p.csv")
    assert "user" not in plain.read_text()  # the column only when some job has a user


def test_stats_count_the_users_of_an_imported_trace(tmp_path: Path) -> None:
    out = tmp_path / "h.csv"
    code, output = _import("--sacct", str(V38), "--out", str(out))
    assert code == 0, output
    r = runner.invoke(app, ["trace", "stats", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["users"] == 1  # rwtest ran all seven
    r = runner.invoke(app, ["trace", "stats", str(DATA / "native_good.csv"), "--json"])
    assert json.loads(r.stdout)["users"] == 0  # no user column


def test_several_files_count_a_job_once(tmp_path: Path) -> None:
    out = tmp_path / "h.csv"
    code, output = _import("--sacct", str(REC_2411 / "sacct-finished-v0.0.42.json"),
                           "--sacct", str(REC_2411 / "sacct-finished-v0.0.41.json"),
                           "--sacct", str(PARSABLE), "--out", str(out), "--json")
    assert code == 0, output
    result = json.loads(output)
    # the 24.11 jobs twice (the same query in two formats) and the 22.05 ones
    assert result["jobs"] == 4 + 7 and result["sacct_format"] == "v0.0.42,v0.0.41,parsable2"
    assert result["left_out"] == {"listed again in a later --sacct file": 4,
                                  "still running": 1}
    assert result["source"].endswith("(+2 more)")
    assert len(read_trace(out).jobs) == 11


def test_a_record_without_submission_time_names_file_and_job(tmp_path: Path) -> None:
    doc = json.loads(V38.read_text())
    doc["jobs"][2]["time"]["submission"] = 0
    path = tmp_path / "nosubmit.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(TraceFormatError, match=r"nosubmit\.json: job 335 has no submission"):
        read_sacct_json(path, ImportSummary())
    doc["jobs"][2]["time"] = "yesterday"  # not the v0.0.38 shape at all
    path.write_text(json.dumps(doc))
    with pytest.raises(TraceFormatError, match=r"does not have the shape of data format"):
        read_sacct_json(path, ImportSummary())
