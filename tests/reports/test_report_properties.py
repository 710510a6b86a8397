"""Property tests: the linear report computations (prefix sums over per-bucket GROUP BY
sums, ``reports/utilisation.py``; one GROUP BY for usage per period) give what the
obvious quadratic definition gives — for every bucket, every run's overlap with it — on
random runs, running jobs, ranges, periods and clocks. On SQLite and PostgreSQL.

Times are whole seconds: SQLite's julianday() keeps milliseconds, so sub-millisecond
parts would be rounded by the database and not by the reference. Even so, julianday() is a
double of about 2.46 million days there, a resolution of about 40 microseconds per
timestamp, hence the tolerance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from report_data import Centre, add_job, add_usage
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from rechenwerk.accounting.models import UsageRecord
from rechenwerk.jobs.models import Job
from rechenwerk.reports.service import usage_report
from rechenwerk.reports.tables import Scope, bucket_floor
from rechenwerk.reports.utilisation import utilisation_report

BASE = datetime(2025, 6, 1, tzinfo=UTC)
HOUR = 3600
# Busy GPU-hours per bucket: exact up to float rounding. On SQLite each timestamp is
# good to ~40 us (julianday() above): at most 16 runs x 2 ends x 64 GPUs x 40 us = 0.08
# GPU-seconds; 0.36 GPU-seconds (1e-4 GPU-hours) leave room and still catch any wrong
# second, run or bucket.
TOL_H = 1e-4

run_st = st.tuples(
    st.integers(-60 * 24 * HOUR, 500 * 24 * HOUR),  # start, seconds after BASE
    st.integers(0, 90 * 24 * HOUR),  # length
    st.sampled_from((1, 2, 4, 8, 64)),  # GPUs
    st.booleans(),  # alpha (else beta)
)
case_st = st.fixed_dictionaries({
    "runs": st.lists(run_st, max_size=12),
    "running": st.lists(st.tuples(st.integers(-30 * 24 * HOUR, 450 * 24 * HOUR),
                                  st.sampled_from((1, 4, 16)), st.booleans()), max_size=4),
    "start": st.integers(-30 * 24 * HOUR, 400 * 24 * HOUR),
    "midnight": st.booleans(),
    "length": st.integers(HOUR, 420 * 24 * HOUR),
    "now": st.integers(-60 * 24 * HOUR, 900 * 24 * HOUR),
    "bucket": st.sampled_from(("day", "week", "month")),
    "only_alpha": st.booleans(),
    "gpus": st.integers(1, 512),
})


def _next(t: datetime, bucket: str) -> datetime:
    if bucket == "day":
        return t + timedelta(days=1)
    if bucket == "week":
        return t + timedelta(days=7)
    return t.replace(year=t.year + 1, month=1) if t.month == 12 else t.replace(month=t.month + 1)


def _reference_utilisation(session: Session, scope: Scope, start: datetime, end: datetime,
                           now: datetime, total_gpus: int, bucket: str
                           ) -> list[tuple[datetime, float, float]]:
    """(period, busy GPU-hours, capacity GPU-hours) per bucket, quadratically: for each
    bucket, every settled run and every running job (from its start until now)."""
    def visible(pid: int) -> bool:
        return scope.project_ids is None or pid in scope.project_ids

    runs = [(r.started_at, r.ended_at, r.gpus)
            for r in session.scalars(select(UsageRecord)) if visible(r.project_id)]
    runs += [(j.started_at, now, j.gpus)
             for j in session.scalars(select(Job).where(Job.state.in_(("starting", "running"))))
             if j.started_at is not None and visible(j.project_id)]
    out = []
    cur = bucket_floor(start, bucket)
    while cur < end:
        nxt = _next(cur, bucket)
        lo, hi = max(cur, start), min(nxt, end)
        busy_s = sum(g * max((min(e, hi) - max(s, lo)).total_seconds(), 0.0)
                     for s, e, g in runs)
        cap_hi = min(hi, max(now, lo))
        out.append((cur, busy_s / 3600.0,
                    total_gpus * max((cap_hi - lo).total_seconds(), 0.0) / 3600.0))
        cur = nxt
    return out


def _load(session: Session, centre: Centre, case: dict[str, Any]) -> tuple[list[int], list[int]]:
    usage, jobs = [], []
    for offset, length, gpus, alpha in case["runs"]:
        project = centre.alpha if alpha else centre.beta
        usage.append(add_usage(session, project, start=BASE + timedelta(seconds=offset),
                               hours=gpus * length / 3600.0, gpus=gpus))
    for offset, gpus, alpha in case["running"]:
        project, pi = (centre.alpha, centre.pi_alpha) if alpha else (centre.beta, centre.pi_beta)
        jobs.append(add_job(session, project, pi, submitted=BASE + timedelta(seconds=offset),
                            wait_h=0.0, gpus=gpus, state="running"))
    session.commit()
    return [u.id for u in usage], [j.id for j in jobs]


def _unload(session: Session, ids: tuple[list[int], list[int]]) -> None:
    session.rollback()
    session.execute(delete(UsageRecord).where(UsageRecord.id.in_(ids[0])))
    session.execute(delete(Job).where(Job.id.in_(ids[1])))
    session.commit()


def _range(case: dict[str, Any]) -> tuple[datetime, datetime, datetime]:
    start = BASE + timedelta(seconds=case["start"])
    if case["midnight"]:
        start = start.replace(hour=0, minute=0, second=0)
    return (start, start + timedelta(seconds=case["length"]),
            BASE + timedelta(seconds=case["now"]))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=case_st)
def test_utilisation_matches_the_quadratic_reference(session: Session, centre: Centre,
                                                     case: dict[str, Any]) -> None:
    ids = _load(session, centre, case)
    try:
        start, end, now = _range(case)
        scope = Scope((centre.alpha.id,)) if case["only_alpha"] else Scope(None)
        table = utilisation_report(session, scope=scope, start=start, end=end,
                                   total_gpus=case["gpus"], now=now, bucket=case["bucket"])
        want = _reference_utilisation(session, scope, start, end, now, case["gpus"],
                                      case["bucket"])
        assert [r["period"] for r in table.rows] == [p for p, _, _ in want]
        for row, (period, busy, capacity) in zip(table.rows, want, strict=True):
            assert row["busy_gpu_hours"] == pytest.approx(busy, rel=1e-9, abs=TOL_H), period
            assert row["capacity_gpu_hours"] == pytest.approx(capacity, rel=1e-9, abs=TOL_H)
        assert table.totals["busy_gpu_hours"] == pytest.approx(
            sum(b for _, b, _ in want), rel=1e-9, abs=TOL_H * len(want))
    finally:
        _unload(session, ids)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=case_st)
def test_usage_per_period_matches_the_reference(session: Session, centre: Centre,
                                                case: dict[str, Any]) -> None:
    ids = _load(session, centre, case)
    try:
        start, end, _ = _range(case)
        scope = Scope((centre.alpha.id,)) if case["only_alpha"] else Scope(None)
        table = usage_report(session, scope=scope, by="period", bucket=case["bucket"],
                             start=start, end=end)
        want: dict[datetime, tuple[float, int]] = {}
        for r in session.scalars(select(UsageRecord)):
            if (start <= r.ended_at < end
                    and (scope.project_ids is None or r.project_id in scope.project_ids)):
                key = bucket_floor(r.ended_at, case["bucket"])
                hours, runs = want.get(key, (0.0, 0))
                want[key] = (hours + r.gpu_hours, runs + 1)
        assert [r["key"] for r in table.rows] == sorted(want)
        for row in table.rows:
            hours, runs = want[row["key"]]
            assert row["gpu_hours"] == pytest.approx(hours, rel=1e-9, abs=TOL_H)
            assert row["jobs"] == runs
    finally:
        _unload(session, ids)
