"""`rechenwerk trace import --sacct`: recorded `sacct -P` output of tiny jobs on the real
Slurm dev cluster (tests/simulation/data/sacct_parsable2_slurm22.txt, Slurm 22.05: a
1-GPU job, a 2-GPU job, a 2-node 8-GPU job, a 3-task array, a failed job and one still
running), anonymisation and bad input (file, line, column)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rechenwerk.cli.main import app
from rechenwerk.simulation.traces import TraceFormatError, read_trace
from rechenwerk.simulation.traces.history import ImportSummary
from rechenwerk.simulation.traces.sacct import read_sacct_parsable

DATA = Path(__file__).parent / "data" / "sacct_parsable2_slurm22.txt"
ACCOUNT = "rwtraceimp27645"
runner = CliRunner()


def test_recorded_sacct_output_parses_to_started_and_ended_gpu_jobs() -> None:
    summary = ImportSummary()
    jobs = {j.job_id: j for j in read_sacct_parsable(DATA, summary)}
    assert sorted(jobs) == ["333", "334", "335", "336_0", "336_1", "336_2", "340"]
    assert summary.left_out == {"still running": 1}  # job 341
    two_nodes = jobs["335"]
    assert (two_nodes.gpus, two_nodes.gpus_per_node, two_nodes.gpu_type) == (8, 4, "a100")
    assert (jobs["333"].duration_s, jobs["333"].walltime_s) == (2.0, 120.0)  # ElapsedRaw, min
    assert jobs["336_1"].array_id == "336" and jobs["333"].array_id is None
    assert jobs["340"].duration_s == 0.0  # failed at once: it still ran
    assert {j.project for j in jobs.values()} == {ACCOUNT}
    assert jobs["340"].submit_epoch - jobs["333"].submit_epoch == 26.0


def test_cli_import_reads_back_and_simulates(tmp_path: Path) -> None:
    out = tmp_path / "history.csv"
    r = runner.invoke(app, ["trace", "import", "--sacct", str(DATA), "--out", str(out),
                            "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["jobs"] == 7 and result["left_out"] == {"still running": 1}
    trace = read_trace(out)
    assert [j.submit_time for j in trace.jobs] == [0, 0, 0, 0, 0, 0, 26]
    assert {j.array_id for j in trace.jobs} == {None, "336"}
    sim = tmp_path / "sim.json"
    r = runner.invoke(app, ["simulate", "--trace", str(out), "--cluster", "2x4:a100",
                            "--policy", "fifo", "--json", str(sim)])
    assert r.exit_code == 0, r.output
    assert json.loads(sim.read_text())["policies"]["fifo"]["jobs"] == 7


def test_since_until_bound_the_submit_time(tmp_path: Path) -> None:
    out = tmp_path / "late.csv"
    r = runner.invoke(app, ["trace", "import", "--sacct", str(DATA), "--out", str(out),
                            "--since", "2026-12-02T07:31:10Z", "--json"])
    assert r.exit_code == 0, r.output
    assert [j.job_id for j in read_trace(out).jobs] == ["340"]
    r = runner.invoke(app, ["trace", "import", "--sacct", str(DATA), "--out", str(out),
                            "--until", "2026-12-02T07:31:00"])
    assert r.exit_code == 2 and "no job to import" in r.output


def test_anonymised_trace_holds_no_original_name_and_is_stable(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for out in (a, b):
        r = runner.invoke(app, ["trace", "import", "--sacct", str(DATA), "--out", str(out),
                                "--anonymise", "--salt", "s3cret"])
        assert r.exit_code == 0, r.output
    text = a.read_text()
    assert text == b.read_text()  # same salt, same hashes
    for original in (ACCOUNT, "333", "336", "340", str(DATA.name), "07:31"):
        assert original not in text
    trace = read_trace(a)
    assert len({j.project for j in trace.jobs}) == 1 and len(trace.jobs) == 7
    assert len({j.array_id for j in trace.jobs if j.array_id}) == 1  # tasks stay one array
    other = tmp_path / "c.csv"
    r = runner.invoke(app, ["trace", "import", "--sacct", str(DATA), "--out", str(other),
                            "--anonymise"])
    assert r.exit_code == 0 and "salt" in r.output  # a random salt, printed once
    assert read_trace(other).jobs[0].project != trace.jobs[0].project


HEADER = "JobID|Account|Submit|Start|End|ElapsedRaw|TimelimitRaw|AllocTRES|QOS|State"
GOOD = ("7|acct|2026-12-02T07:31:04|2026-12-02T07:31:07|2026-12-02T07:31:09|2|2|gres/gpu=1|"
        "normal|COMPLETED")


@pytest.mark.parametrize(("line", "needle"), [
    (GOOD.replace("gres/gpu=1", "gres/gpu=x"), ":3: column 'AllocTRES'"),
    (GOOD.replace("2026-12-02T07:31:04", "yesterday"), ":3: column 'Submit'"),
    (GOOD.replace("|2|2|", "|2s|2|"), ":3: column 'ElapsedRaw'"),
    (GOOD.replace("7|", "seven|", 1), ":3: column 'JobID'"),
    (GOOD + "|extra", ":3: expected 10 '|'-separated fields"),
    (GOOD, ":3: column 'JobID': job 7 again (first on line 2)"),
])
def test_malformed_lines_name_file_line_and_column(tmp_path: Path, line: str,
                                                   needle: str) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{HEADER}\n{GOOD}\n{line}\n")
    with pytest.raises(TraceFormatError, match="bad.txt" + re.escape(needle)):
        read_sacct_parsable(bad, ImportSummary())
    r = runner.invoke(app, ["trace", "import", "--sacct", str(bad), "--out",
                            str(tmp_path / "o.csv")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert not (tmp_path / "o.csv").exists()  # nothing half-written


def test_never_started_steps_and_cpu_jobs_are_left_out(tmp_path: Path) -> None:
    f = tmp_path / "s.txt"
    f.write_text("\n".join([
        HEADER, GOOD,
        GOOD.replace("7|", "7.batch|", 1),
        GOOD.replace("7|", "8|", 1).replace("2026-12-02T07:31:07", "Unknown"),
        "9_[1-5%2]|acct|2026-12-02T07:31:04|Unknown|Unknown|0|2||normal|PENDING",
        GOOD.replace("7|", "10|", 1).replace("gres/gpu=1", "cpu=4,node=1"),
    ]) + "\n")
    summary = ImportSummary()
    assert [j.job_id for j in read_sacct_parsable(f, summary)] == ["7"]
    assert summary.left_out == {"never started": 2, "no GPUs": 1}


@pytest.mark.parametrize(("args", "needle"), [
    ([], "exactly one source"),
    (["--from-db", "--sacct", str(DATA)], "exactly one source"),
    (["--sacct", str(DATA), "--salt", "x"], "--salt needs --anonymise"),
    (["--sacct", str(DATA), "--since", "last week"], "--since: expected an ISO-8601"),
    (["--sacct", str(DATA), "--since", "2026-12-03", "--until", "2026-12-02"], "not before"),
])
def test_bad_options_are_one_line_errors(tmp_path: Path, args: list[str], needle: str) -> None:
    r = runner.invoke(app, ["trace", "import", "--out", str(tmp_path / "o.csv"), *args])
    assert r.exit_code == 2, r.output
    assert needle in " ".join(r.output.split()) and "Traceback" not in r.output


def test_header_missing_or_wrong_format(tmp_path: Path) -> None:
    f = tmp_path / "p.txt"
    f.write_text("JobID|State\n1|COMPLETED\n")
    with pytest.raises(TraceFormatError, match=r"p.txt:1: .*missing column\(s\) Submit"):
        read_sacct_parsable(f, ImportSummary())
    f.write_text("")
    with pytest.raises(TraceFormatError, match="empty"):
        read_sacct_parsable(f, ImportSummary())


def test_progress_reaches_the_size_of_the_file() -> None:
    seen: list[int] = []
    read_sacct_parsable(DATA, ImportSummary(), progress=seen.append)
    assert seen == [len(DATA.read_text(encoding="utf-8-sig"))]
