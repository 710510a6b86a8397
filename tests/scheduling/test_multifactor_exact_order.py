"""The multifactor queue's merged order is exact: priority keys one ulp apart, offsets
that round them together, and fractional submit times never make the cached merge
disagree with the per-project lists (the crash on a time-compressed Philly trace:
``assert self._c_jobs[i] is job`` in ``remove``)."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rechenwerk.scheduling import PendingJob
from rechenwerk.scheduling.params import PolicyParams
from rechenwerk.scheduling.policies.ordering import MultifactorQueue, exact_difference

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
PHILLY = SHARED / "traces" / "philly.csv"


@given(st.floats(-1e12, 1e12), st.floats(-1e12, 1e12))
def test_exact_difference_is_exact(a: float, b: float) -> None:
    s, e = exact_difference(a, b)
    assert s == a - b and Fraction(s) + Fraction(e) == Fraction(a) - Fraction(b)


@dataclass
class _Sched:
    """What MultifactorQueue asks of its scheduler: fixed static priorities and
    fair-share offsets chosen by the test."""

    static: dict[str, float]
    fs: dict[str, float]
    now: float = 5.0
    params: PolicyParams = field(default_factory=PolicyParams)

    def static_priority(self, job: PendingJob) -> float:
        return self.static[job.job_id]

    def weight_fs_factor(self, project: str) -> float:
        return self.fs[project]

    def _arrival(self, job: PendingJob) -> int:
        return int(job.job_id)


def _reference(q: MultifactorQueue, sched: _Sched, jobs: list[PendingJob]) -> list[str]:
    """The order by exact priority, then submit time, then project rank, then list key."""
    rows = []
    for j in jobs:
        # a young job's list key, computed in floats as the queue does, and its list's
        # offset; their difference taken exactly
        lk0 = -(sched.static[j.job_id] - q._a * j.submit_time)
        off = sched.fs[j.project] + q._a * q.t
        rows.append((Fraction(lk0) - Fraction(off), j.submit_time, q._rank[j.project], lk0,
                     j.submit_time, int(j.job_id), j.job_id))
    return [r[-1] for r in sorted(rows)]


ulps = st.integers(0, 64)
# Offsets much larger than the keys: their difference has a coarser ulp than the keys,
# so keys a few ulps apart round to one value (the crash's condition).
offsets = st.sampled_from([10_000.123456789, 123_456.789, -5_000.5, 1.0])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("ab"), ulps, st.integers(0, 49)), min_size=2,
             max_size=40),
    st.lists(st.integers(0, 39), max_size=20),
    st.integers(1, 8),
    offsets, offsets,
)
def test_cached_merge_agrees_with_exact_order(spec: list[tuple[str, int, int]],
                                              removals: list[int], k: int,
                                              off_a: float, off_b: float) -> None:
    base = 240.2863756613756
    static, jobs = {}, []
    for i, (project, ulp, tenths) in enumerate(spec):
        g = base
        for _ in range(ulp):
            g = math.nextafter(g, math.inf)
        jid = str(i)
        static[jid] = g
        # fractional submit times, all young (within max_age of now)
        jobs.append(PendingJob(jid, project=project, submit_time=tenths / 10))
    sched = _Sched(static, {"a": off_a, "b": off_b})
    q = MultifactorQueue(sched)  # type: ignore[arg-type]
    for j in jobs:
        q.push((j.submit_time, float(j.job_id)), j)
    assert [j.job_id for j in q.first(k)] == _reference(q, sched, jobs)[:k]  # fills the cache
    alive = list(jobs)
    for r in removals:
        if not alive:
            break
        victim = alive.pop(r % len(alive))
        q.remove(victim)  # crashed here when the cache was out of order
        assert [j.job_id for j in q.first(len(alive))] == _reference(q, sched, alive)


@pytest.mark.slow
@pytest.mark.skipif(not PHILLY.exists(), reason=f"{PHILLY} not found (../shared beside the "
                                                "checkout)")
def test_time_compressed_philly_runs_through(tmp_path: Path) -> None:
    """The issue's reproduction: Philly with submit times divided by 10 (floats), 500x8,
    multifactor, 49,422 jobs (the crash came at the 49,422nd)."""
    rw = Path(sys.executable).parent / "rechenwerk"
    native = tmp_path / "philly.csv"
    subprocess.run([str(rw), "trace", "convert", str(PHILLY), "--out", str(native)],
                   check=True, capture_output=True, timeout=600)
    lines = native.read_text().splitlines()
    comments = [x for x in lines if x.startswith("#")]
    rows = list(csv.reader(x for x in lines if not x.startswith("#")))
    header, body = rows[0], rows[1:]
    col = header.index("submit_time")
    for row in body:
        row[col] = repr(float(row[col]) / 10)
    compressed = tmp_path / "philly-10x.csv"
    with open(compressed, "w", newline="") as fh:
        fh.write("\n".join(comments) + "\n")
        csv.writer(fh).writerows([header, *body])
    out = tmp_path / "result.json"
    done = subprocess.run(
        [str(rw), "simulate", "--trace", str(compressed), "--format", "native", "--cluster",
         "500x8", "--policy", "multifactor", "--limit", "49422", "--json", str(out)],
        capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "49,422" in done.stdout
