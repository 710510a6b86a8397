"""Job array expressions (Slurm's --array) and the %N limit, in the pure core."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rechenwerk.scheduling.arrays import (
    compress_indices,
    hold_array_excess,
    parse_array,
)
from rechenwerk.scheduling.model import Node, PendingJob, RunningJob, Snapshot


@pytest.mark.parametrize(("text", "indices", "limit"), [
    ("0-9", list(range(10)), None),
    ("0-99%10", list(range(100)), 10),
    ("0-99:2", list(range(0, 100, 2)), None),
    ("1,3,5-7", [1, 3, 5, 6, 7], None),
    ("7", [7], None),
    (" 3 , 1 ", [1, 3], None),
    ("5-7,0-6:3%2", [0, 3, 5, 6, 7], 2),
    ("4-4", [4], None),
])
def test_parses_slurm_forms(text: str, indices: list[int], limit: int | None) -> None:
    arr = parse_array(text, max_tasks=10_000)
    assert list(arr.indices) == indices and arr.limit == limit


@pytest.mark.parametrize(("text", "words"), [
    ("", "empty"),
    ("9-3", "ends before it starts"),
    ("0-9:0", "step"),
    ("0-9%0", "at least 1"),
    ("0-9%x", "limit after '%'"),
    ("a-b", "is not an index"),
    ("-1", "is not an index"),
    ("1,,2", "is not an index"),
    ("%4", "names no task indices"),
    ("0-10000", "more than 10000 tasks"),
    ("0-999999999999", "at most"),
])
def test_refuses_malformed_or_too_large(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_array(text, max_tasks=10_000)


def test_a_huge_range_is_refused_without_building_it() -> None:
    with pytest.raises(ValueError, match="more than 100 tasks"):
        parse_array("0-2000000000", max_tasks=100)


_item = st.one_of(
    st.integers(0, 500).map(str),
    st.tuples(st.integers(0, 300), st.integers(0, 300)).map(
        lambda t: f"{min(t)}-{max(t)}"),
    st.tuples(st.integers(0, 300), st.integers(0, 300), st.integers(1, 7)).map(
        lambda t: f"{min(t[:2])}-{max(t[:2])}:{t[2]}"),
)


def _expected(items: list[str]) -> set[int]:
    out: set[int] = set()
    for item in items:
        span, _, step = item.partition(":")
        a, _, b = span.partition("-")
        out |= set(range(int(a), int(b or a) + 1, int(step or 1)))
    return out


@given(st.lists(_item, min_size=1, max_size=6), st.none() | st.integers(1, 50))
def test_property_indices_equal_the_union_of_items(items: list[str],
                                                   limit: int | None) -> None:
    text = ",".join(items) + (f"%{limit}" if limit else "")
    arr = parse_array(text, max_tasks=100_000)
    assert set(arr.indices) == _expected(items)
    assert list(arr.indices) == sorted(set(arr.indices))
    assert arr.limit == limit
    # The canonical text means the same array.
    again = parse_array(arr.text(), max_tasks=100_000)
    assert again == arr


@given(st.sets(st.integers(0, 1000), min_size=1))
def test_property_compress_round_trips(indices: set[int]) -> None:
    assert set(parse_array(compress_indices(indices), max_tasks=10_000).indices) == indices


def _task(i: int, limit: int | None = 2, array: str = "10") -> PendingJob:
    return PendingJob(job_id=str(10 + i), gpus=1, array_id=array, array_index=i,
                      array_limit=limit)


def test_tasks_beyond_the_limit_wait_with_the_reason() -> None:
    running = RunningJob("10", "default", 1, (("n1", (0,)),), 0.0, array_id="10")
    snap = Snapshot(now=0.0, nodes=(Node("n1", 8),), running=(running,),
                    pending=(_task(1), _task(2), _task(3), PendingJob("99", gpus=1)))
    held_snap, held = hold_array_excess(snap)
    assert [j.job_id for j in held_snap.pending] == ["11", "99"]
    assert set(held) == {"12", "13"}
    assert held["12"].code == "array_limit"
    assert held["12"].message.startswith("array task limit")


def test_no_limit_no_change() -> None:
    snap = Snapshot(now=0.0, nodes=(Node("n1", 8),), pending=(_task(1, None), _task(2, None)))
    assert hold_array_excess(snap) == (snap, {})


def test_forecasts_let_held_tasks_in_as_their_array_frees_slots() -> None:
    from rechenwerk.scheduling.forecast import forecast_starts
    from rechenwerk.scheduling.policies import make_policy

    pending = tuple(PendingJob(job_id=str(10 + i), gpus=1, walltime_s=100.0, array_id="10",
                               array_index=i, array_limit=2) for i in range(6))
    snap = Snapshot(now=0.0, nodes=(Node("n1", 8),), pending=(*pending,
                    PendingJob("99", gpus=1, walltime_s=100.0)))
    fc = forecast_starts(make_policy("fifo"), snap)
    assert [fc.start_of(str(10 + i)) for i in range(6)] == [0.0, 0.0, 100.0, 100.0,
                                                             200.0, 200.0]
    assert fc.start_of("99") == 0.0


@given(st.text(alphabet="0123456789-:,%x ", max_size=30))
def test_property_any_text_parses_or_is_refused_in_words(text: str) -> None:
    try:
        arr = parse_array(text, max_tasks=1000)
    except ValueError as exc:
        assert str(exc)  # a message, never another exception
    else:
        assert 1 <= arr.count <= 1000 and (arr.limit is None or arr.limit >= 1)
