"""Trace readers: native CSV and Philly, good files and every kind of malformed row."""

from __future__ import annotations

from pathlib import Path

import pytest

from rechenwerk.errors import InvalidInput, NotFound
from rechenwerk.simulation.traces import (
    Trace,
    TraceFormatError,
    TraceJob,
    read_trace,
    write_native_csv,
)

DATA = Path(__file__).parent / "data"
PHILLY = Path("/work/shared/traces/philly.csv")


def write(tmp_path: Path, text: str, name: str = "trace.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# --- native: good files --------------------------------------------------------------


def test_native_good_file_all_columns() -> None:
    tr = read_trace(DATA / "native_good.csv")
    assert tr.skipped == ()
    assert tr.source.endswith("native_good.csv")
    # sorted by submit time, stable by line for the two jobs at 30.5
    assert [j.job_id for j in tr.jobs] == ["eval-1", "ft-1", "dbg-1", "train-1"]
    train = tr.jobs[-1]
    assert train == TraceJob(
        job_id="train-1",
        submit_time=120.0,
        duration_s=86400.0,
        gpus=64,
        project="llm",
        walltime_s=172800.0,
        gpus_per_node=8,
        qos="high",
        gpu_type="H100",
    )
    ev = tr.jobs[0]
    assert (ev.walltime_s, ev.gpus_per_node, ev.qos, ev.gpu_type) == (None, None, "normal", None)
    dbg = tr.jobs[2]
    assert dbg.project == "default" and dbg.duration_s == 0.0 and dbg.qos == "low"


def test_native_iso_timestamps_are_relative_to_earliest() -> None:
    tr = read_trace(DATA / "native_iso.csv")
    # 09:59Z is the start; 10:00Z = 60 s; 11:00+01:00 = 10:00Z = 60 s (stable order)
    assert [(j.project, j.submit_time) for j in tr.jobs] == [("b", 0.0), ("a", 60.0), ("a", 60.0)]
    assert [j.job_id for j in tr.jobs] == ["L3", "L2", "L4"]  # generated from the line


def test_native_minimal_columns_any_order(tmp_path: Path) -> None:
    p = write(tmp_path, "gpus,duration_s,submit_time\n2,10,5\n1,1.5,0\n")
    tr = read_trace(p)
    assert [(j.gpus, j.duration_s, j.submit_time) for j in tr.jobs] == [(1, 1.5, 0.0), (2, 10, 5)]


# --- native: malformed rows name file, line and column ------------------------------


def test_fixture_bad_gpus_message_is_exact() -> None:
    path = DATA / "native_bad_gpus.csv"
    with pytest.raises(TraceFormatError) as exc:
        read_trace(path)
    assert exc.value.message == f"{path}:3: column 'gpus': expected a positive integer, got 'x'"
    assert isinstance(exc.value, InvalidInput)
    assert exc.value.hint is not None and "--skip-invalid" in exc.value.hint


HEADER = "job_id,submit_time,duration_s,gpus,project,walltime_s,gpus_per_node,qos,gpu_type\n"
GOOD = "a,0,10,1,p,,,,\n"


@pytest.mark.parametrize(
    ("row", "column", "fragment"),
    [
        ("b,x,10,1,p,,,,", "submit_time", "ISO-8601 timestamp"),
        ("b,-5,10,1,p,,,,", "submit_time", "non-negative seconds"),
        ("b,,10,1,p,,,,", "submit_time", "missing value"),
        ("b,2026-01-01T00:00:00Z,10,1,p,,,,", "submit_time", "mixed time forms"),
        ("b,1,-1,1,p,,,,", "duration_s", "non-negative number"),
        ("b,1,nan,1,p,,,,", "duration_s", "non-negative number"),
        ("b,1,10,0,p,,,,", "gpus", "positive integer, got '0'"),
        ("b,1,10,2.5,p,,,,", "gpus", "positive integer, got '2.5'"),
        ("b,1,10,1,p,0,,,", "walltime_s", "positive number"),
        ("b,1,10,1,p,abc,,,", "walltime_s", "positive number"),
        ("b,1,10,12,p,,8,,", "gpus_per_node", "multiple of gpus_per_node"),
        ("b,1,10,4,p,,8,,", "gpus_per_node", "more than the job's 4 GPUs"),
        ("b,1,10,1,p,,x,,", "gpus_per_node", "positive integer"),
        ("b,1,10,1,p,,,urgent,", "qos", "normal, high, low"),
        ("a,1,10,1,p,,,,", "job_id", "duplicate job_id 'a' (first on line 2)"),
    ],
)
def test_native_malformed_row(tmp_path: Path, row: str, column: str, fragment: str) -> None:
    p = write(tmp_path, HEADER + GOOD + row + "\n" + "c,2,10,1,p,,,,\n")
    with pytest.raises(TraceFormatError) as exc:
        read_trace(p)
    msg = exc.value.message
    assert msg.startswith(f"{p}:3: column '{column}': "), msg
    assert fragment in msg
    # with skip_invalid the row is counted and reported, the others are kept
    tr = read_trace(p, skip_invalid=True)
    assert [j.job_id for j in tr.jobs] == ["a", "c"]
    assert len(tr.skipped) == 1
    s = tr.skipped[0]
    assert (s.path, s.line, s.column) == (str(p), 3, column)
    assert fragment in s.message


def test_native_wrong_field_count(tmp_path: Path) -> None:
    p = write(tmp_path, "submit_time,duration_s,gpus\n0,1,1\n1,2\n")
    with pytest.raises(TraceFormatError, match=r"trace.csv:3: expected 3 fields as in the header"):
        read_trace(p)


def test_skip_invalid_counts_every_bad_row(tmp_path: Path) -> None:
    p = write(tmp_path, "submit_time,duration_s,gpus\n0,1,1\nx,1,1\n2,y,1\n3,1,z\n4,1,1\n")
    tr = read_trace(p, skip_invalid=True)
    assert len(tr.jobs) == 2
    assert [(s.line, s.column) for s in tr.skipped] == [
        (3, "submit_time"),
        (4, "duration_s"),
        (5, "gpus"),
    ]
    assert str(tr.skipped[0]).startswith(f"{p}:3: column 'submit_time':")


def test_missing_required_column_is_named(tmp_path: Path) -> None:
    p = write(tmp_path, "submit_time,gpus\n0,1\n")
    with pytest.raises(TraceFormatError, match=r"missing required column\(s\) 'duration_s'"):
        read_trace(p)


def test_unknown_column_is_named(tmp_path: Path) -> None:
    p = write(tmp_path, "submit_time,duration_s,gpus,walltime\n0,1,1,5\n")
    with pytest.raises(TraceFormatError) as exc:
        read_trace(p)
    assert "unknown column(s) 'walltime'" in exc.value.message
    assert exc.value.hint is not None and "walltime_s" in exc.value.hint


def test_duplicate_header_column(tmp_path: Path) -> None:
    p = write(tmp_path, "submit_time,duration_s,gpus,gpus\n0,1,1,1\n")
    with pytest.raises(TraceFormatError, match=r"trace.csv:1: column 'gpus': duplicate column"):
        read_trace(p)


def test_empty_file_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="empty"):
        read_trace(write(tmp_path, "# only a comment\n\n"))
    with pytest.raises(NotFound, match="trace file not found"):
        read_trace(tmp_path / "nope.csv")
    with pytest.raises(InvalidInput, match="unknown trace format 'swf'"):
        read_trace(DATA / "native_good.csv", "swf")


def test_header_only_gives_empty_trace(tmp_path: Path) -> None:
    tr = read_trace(write(tmp_path, "submit_time,duration_s,gpus\n"))
    assert tr.jobs == () and tr.skipped == ()


# --- writer round trip ----------------------------------------------------------------


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    tr = read_trace(DATA / "native_good.csv")
    out = write_native_csv(tr, tmp_path / "sub" / "rt.csv")
    back = read_trace(out)
    assert back.jobs == tr.jobs
    odd = Trace(
        jobs=(
            TraceJob("x,1", 0.1 + 0.2, 1e-3, 3, project='p "q"'),
            TraceJob("y", 12345.678901234, 7.0, 16, gpus_per_node=8, walltime_s=9.5),
        ),
        skipped=(),
        source="mem",
    )
    assert read_trace(write_native_csv(odd, tmp_path / "odd.csv")).jobs == odd.jobs


def test_writer_rejects_duplicate_ids(tmp_path: Path) -> None:
    tr = Trace(jobs=(TraceJob("a", 0, 1, 1), TraceJob("a", 1, 1, 1)), skipped=(), source="m")
    with pytest.raises(InvalidInput, match="duplicate job_id 'a'"):
        write_native_csv(tr, tmp_path / "d.csv")


# --- Philly -----------------------------------------------------------------------------


def test_philly_small_fixture() -> None:
    tr = read_trace(DATA / "philly_small.csv", "philly")
    assert [(j.job_id, j.submit_time, j.gpus, j.project) for j in tr.jobs] == [
        ("L3", 0.0, 1, "6214e9"),
        ("L4", 0.0, 4, "6214e9"),  # 0 s duration rows are kept
        ("L5", 33.0, 8, "6c71a0"),
        ("L2", 2932.0, 1, "11cb48"),
    ]
    assert tr.jobs[1].duration_s == 0.0
    assert all(j.walltime_s is None and j.gpus_per_node is None for j in tr.jobs)


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("2017-13-09 07:01:55,66.0,1,66.0,x", "timestamp"),
        ("2017-10-09 07:01:55,-1,1,66.0,x", "duration"),
        ("2017-10-09 07:01:55,66,0,0,x", "num_gpus"),
        ("2017-10-09 07:01:55,66,1.5,0,x", "num_gpus"),
        ("2017-10-09 07:01:55,66,1,66,", "cluster"),
    ],
)
def test_philly_malformed(tmp_path: Path, row: str, column: str) -> None:
    head = "timestamp,duration,num_gpus,gpu_time,cluster\n2017-10-09 07:00:00,1,1,1,a\n"
    p = write(tmp_path, head + row + "\n")
    with pytest.raises(TraceFormatError, match=rf"^{p}:3: column '{column}': "):
        read_trace(p, "philly")
    tr = read_trace(p, "philly", skip_invalid=True)
    assert len(tr.jobs) == 1 and [(s.line, s.column) for s in tr.skipped] == [(3, column)]


def test_philly_missing_column(tmp_path: Path) -> None:
    p = write(tmp_path, "timestamp,duration,gpu_time,cluster\n")
    with pytest.raises(TraceFormatError, match="'num_gpus'"):
        read_trace(p, "philly")


@pytest.mark.skipif(not PHILLY.exists(), reason=f"{PHILLY} not present")
def test_philly_full_file_facts() -> None:
    tr = read_trace(PHILLY, "philly")
    assert len(tr.jobs) == 82_247 and tr.skipped == ()
    projects: dict[str, int] = {}
    gpus: dict[int, int] = {}
    for j in tr.jobs:
        projects[j.project] = projects.get(j.project, 0) + 1
        gpus[j.gpus] = gpus.get(j.gpus, 0) + 1
    assert len(projects) == 15
    assert max(projects.values()) == 41_226 and min(projects.values()) == 3
    assert sorted(gpus) == [1, 2, 4, 8, 12, 16, 24, 32, 64, 128]
    assert gpus[1] == 76_627 and gpus[128] == 3
    assert tr.jobs[0].submit_time == 0.0
    assert all(a.submit_time <= b.submit_time for a, b in zip(tr.jobs, tr.jobs[1:], strict=False))
    assert tr.jobs[-1].submit_time / 86400 == pytest.approx(108.9, abs=0.05)
    gpu_hours = sum(j.gpus * j.duration_s for j in tr.jobs) / 3600
    assert gpu_hours == pytest.approx(978_078, rel=1e-5)
    assert len({j.job_id for j in tr.jobs}) == 82_247


def test_hash_after_header_is_a_row_not_a_comment(tmp_path: Path) -> None:
    p = write(tmp_path, "# comment\njob_id,submit_time,duration_s,gpus\n#7,0,1,1\n# old row\n")
    with pytest.raises(TraceFormatError, match=r"trace.csv:4: expected 4 fields as in the header"):
        read_trace(p)
    tr = read_trace(p, skip_invalid=True)
    assert [j.job_id for j in tr.jobs] == ["#7"] and len(tr.skipped) == 1
