"""The simulator honours job dependencies (as the live service does) and the native trace
format carries them in its ``depends_on`` column."""

from __future__ import annotations

from pathlib import Path

import pytest

from rechenwerk.errors import InvalidInput
from rechenwerk.simulation.cluster import uniform_cluster
from rechenwerk.simulation.engine import run_simulation
from rechenwerk.simulation.traces import TraceJob, read_trace, write_native_csv
from rechenwerk.simulation.traces.base import Trace, TraceFormatError


def job(jid: str, submit: float, duration: float, gpus: int = 8, *,
        walltime: float | None = None, deps: tuple[tuple[str, str], ...] = ()) -> TraceJob:
    return TraceJob(jid, submit, duration, gpus, walltime_s=walltime, depends_on=deps)


@pytest.mark.parametrize("policy", ["fifo", "easy-backfill", "multifactor+easy-backfill"])
def test_pipeline_starts_after_train_and_never_satisfiable_branches_are_cancelled(
        policy: str) -> None:
    trace = [
        job("train", 0, 100),
        # submitted at once, but waits for train although 8 GPUs are free
        job("eval", 0, 10, deps=(("after_ok", "train"),)),
        job("on-fail", 0, 10, deps=(("after_not_ok", "train"),)),
        job("after-fail", 1, 10, deps=(("after_ok", "on-fail"),)),   # down the chain
        job("cleanup", 2, 5, deps=(("after_any", "on-fail"),)),        # met by a cancel
        # a training killed at its walltime: after_ok never holds, after_not_ok does
        job("short", 0, 100, walltime=50),
        job("short-eval", 0, 10, deps=(("after_ok", "short"),)),
        job("short-report", 0, 10, deps=(("after_not_ok", "short"),)),
    ]
    r = run_simulation(trace, uniform_cluster(2, 8), policy, strict=True)
    by = {o.job_id: o for o in r.outcomes}
    assert sorted(r.cancelled) == ["after-fail", "on-fail", "short-eval"]
    assert set(by) == {"train", "eval", "cleanup", "short", "short-report"}
    assert by["eval"].first_start_time >= by["train"].end_time == 100
    assert by["short"].end_time == 50
    assert by["short-report"].first_start_time >= 50
    assert by["cleanup"].first_start_time >= 2
    assert r.to_dict()["cancelled_jobs"] == 3
    # Without the dependencies eval would have started at once beside train.
    free = run_simulation([job("train", 0, 100), job("eval", 0, 10)],
                          uniform_cluster(2, 8), policy)
    assert {o.job_id: o.first_start_time for o in free.outcomes}["eval"] == 0


def test_engine_refuses_unknown_self_and_cyclic_dependencies() -> None:
    cluster = uniform_cluster(1, 8)
    for bad, words in [
        ([job("a", 0, 1, deps=(("after_ok", "zz"),))], "not in the trace"),
        ([job("a", 0, 1, deps=(("after_ok", "a"),))], "itself"),
        ([job("a", 0, 1, deps=(("after_ok", "b"),)), job("b", 0, 1, deps=(("after_ok", "a"),))],
         "cycle"),
        ([job("a", 0, 1), job("b", 0, 1, deps=(("before", "a"),))], "unknown dependency"),
    ]:
        with pytest.raises(InvalidInput) as err:
            run_simulation(bad, cluster, "fifo")
        assert words in err.value.message


def test_native_trace_column_reads_writes_and_refuses_bad_references(tmp_path: Path) -> None:
    good = tmp_path / "pipeline.csv"
    good.write_text("job_id,submit_time,duration_s,gpus,depends_on\n"
                    "train,0,100,8,\n"
                    "eval,5,10,1,after_ok:train\n"
                    "report,5,10,1,afternotok:train\n"
                    "both,6,1,1,after_any:eval:report,after_ok:train\n".replace(
                        "after_any:eval:report,after_ok:train",
                        '"after_any:eval:report,after_ok:train"'))
    trace = read_trace(good)
    deps = {j.job_id: j.depends_on for j in trace.jobs}
    assert deps["eval"] == (("after_ok", "train"),)
    assert deps["report"] == (("after_not_ok", "train"),)
    assert deps["both"] == (("after_any", "eval"), ("after_any", "report"),
                            ("after_ok", "train"))
    out = write_native_csv(trace, tmp_path / "back.csv")
    assert read_trace(out).jobs == trace.jobs
    # A trace without dependencies keeps the old header (no new column).
    plain = write_native_csv(Trace((job("x", 0.0, 1.0),), (), "t"), tmp_path / "plain.csv")
    assert "depends_on" not in plain.read_text()
    r = run_simulation(trace.jobs, uniform_cluster(1, 8), "fifo")
    assert r.cancelled == ["report"] and len(r.outcomes) == 3

    for rows, words in [
        ("a,0,1,1,after_ok:b\nb,0,1,1,\n", "not on an earlier line"),
        ("a,0,1,1,after_ok:a\n", "not on an earlier line"),
        ("a,5,1,1,\nb,0,1,1,after_ok:a\n", "submitted after this job"),
        ("a,0,1,1,\nb,0,1,1,after:a\n", "expected kind:id"),
        ("a,0,1,1,\nb,0,1,1,after_ok\n", "expected kind:id"),
    ]:
        bad = tmp_path / "bad.csv"
        bad.write_text("job_id,submit_time,duration_s,gpus,depends_on\n" + rows)
        with pytest.raises(TraceFormatError) as err:
            read_trace(bad)
        assert "column 'depends_on'" in err.value.message and words in err.value.message
