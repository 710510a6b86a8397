"""Property test: any valid trace survives write_native_csv -> read_trace unchanged."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from rechenwerk.simulation.traces import Trace, TraceJob, read_trace, write_native_csv

text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x00"),
    min_size=1,
    max_size=12,
).filter(lambda s: s == s.strip())
seconds = st.floats(0, 1e9, allow_nan=False, allow_infinity=False)


@st.composite
def jobs(draw: st.DrawFn) -> TraceJob:
    gpn = draw(st.none() | st.sampled_from([1, 2, 4, 8]))
    gpus = draw(st.integers(1, 64))
    if gpn is not None:
        gpus = gpn * draw(st.integers(1, 8))
    return TraceJob(
        job_id=draw(text),
        submit_time=draw(seconds),
        duration_s=draw(seconds),
        gpus=gpus,
        project=draw(text),
        walltime_s=draw(st.none() | st.floats(1e-3, 1e9, allow_nan=False)),
        gpus_per_node=gpn,
        qos=draw(st.sampled_from(["normal", "high", "low"])),
        gpu_type=draw(st.none() | text),
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(jobs(), max_size=15, unique_by=lambda j: j.job_id))
def test_round_trip(js: list[TraceJob]) -> None:
    ordered = tuple(sorted(js, key=lambda j: j.submit_time))
    trace = Trace(jobs=ordered, skipped=(), source="hypothesis")
    with tempfile.TemporaryDirectory() as tmp:
        back = read_trace(write_native_csv(trace, Path(tmp) / "t.csv"))
    assert back.jobs == ordered
