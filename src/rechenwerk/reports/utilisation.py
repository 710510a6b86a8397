"""Utilisation of the centre over time: settled runs and still-running jobs split
exactly over the time buckets they overlap; capacity is GPUs x bucket length. Linear in
the number of buckets (prefix sums), at most ``MAX_BUCKETS`` of them."""

from __future__ import annotations

import bisect
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session

from rechenwerk.accounting.models import UsageRecord
from rechenwerk.errors import InvalidInput
from rechenwerk.reports.guard import NO_GUARD, Guard
from rechenwerk.reports.sql import BUCKETS, bucket_start, bucket_value, dialect_of, epoch_s
from rechenwerk.reports.tables import (
    Column,
    ReportTable,
    Scope,
    bucket_floor,
    check_buckets,
    check_choice,
)

# --------------------------------------------------------------------------- utilisation




def _bucket_edges(start: datetime, end: datetime, bucket: str) -> list[datetime]:
    """Edges from the bucket containing ``start`` up to past ``end``."""
    cur = bucket_floor(start, bucket)
    edges = [cur]
    while cur < end:
        if bucket == "day":
            cur = cur + timedelta(days=1)
        elif bucket == "week":
            cur = cur + timedelta(days=7)
        else:
            cur = (cur.replace(year=cur.year + 1, month=1) if cur.month == 12
                   else cur.replace(month=cur.month + 1))
        edges.append(cur)
    return edges


def _clamp(column: Any, *, low: datetime | None = None, high: datetime | None = None) -> Any:
    """``column`` limited to [low, high] in SQL (both backends)."""

    from rechenwerk.store.base import UTCDateTime

    if low is not None:
        column = case((column < literal(low, UTCDateTime()), literal(low, UTCDateTime())),
                      else_=column)
    if high is not None:
        column = case((column > literal(high, UTCDateTime()), literal(high, UTCDateTime())),
                      else_=column)
    return column


def _prefix(values: list[float]) -> list[float]:
    """``out[k] = sum(values[:k])``."""
    out = [0.0]
    for v in values:
        out.append(out[-1] + v)
    return out


def _suffix(values: list[float]) -> list[float]:
    """``out[k] = sum(values[k:])``."""
    out = [0.0] * (len(values) + 1)
    for k in range(len(values) - 1, -1, -1):
        out[k] = out[k + 1] + values[k]
    return out


def utilisation_report(
    session: Session,
    *,
    scope: Scope,
    start: datetime,
    end: datetime,
    total_gpus: int,
    now: datetime,
    bucket: str = "day",
    guard: Guard = NO_GUARD,
) -> ReportTable:
    """Busy GPU-hours per bucket over capacity (``total_gpus`` x bucket length).

    Finished runs come from the usage records, running jobs from the jobs table (from
    their start until ``now``); each run is split exactly over the buckets it overlaps.

    The database does the heavy lifting: with every run clipped to [start, end], the busy
    GPU-seconds up to time t are ``A(t) = sum_i g_i * (min(t, e_i) - min(t, s_i))``, and
    ``A`` at every bucket edge follows from per-bucket sums of ``g`` and ``g * s`` (and
    ``g`` and ``g * e``) grouped by the bucket that contains ``s`` (``e``). A bucket's busy
    time is ``A(hi) - A(lo)``: exact, and two small GROUP BY queries per source instead
    of shipping every run to Python. Linear in runs + buckets: the database scans the
    runs once per query, Python walks the buckets a constant number of times.

    ``guard`` is checked before every query and every few hundred buckets
    (``reports/guard.py``): a stopped guard ends the computation.
    """
    from rechenwerk.jobs.models import Job

    check_choice(bucket, BUCKETS, "period")
    if total_gpus <= 0:
        raise InvalidInput(f"total_gpus must be positive, got {total_gpus}",
                           field="total_gpus", hint="Give the centre's GPU count.")
    check_buckets(start, end, bucket)
    dialect = dialect_of(session)
    edges = _bucket_edges(start, end, bucket)
    points = [start, *edges[1:-1], end]  # evaluation points; bucket b = [points[b], b+1)
    index = {e: i for i, e in enumerate(edges)}
    origin = start.timestamp()
    n = len(points)
    # per bucket index j: sums of g and g*x over runs whose clipped start (end) lies in j
    g_s = [0.0] * (n + 1)
    gx_s = [0.0] * (n + 1)
    g_e = [0.0] * (n + 1)
    gx_e = [0.0] * (n + 1)

    def accumulate(stmt: Any, g_acc: list[float], gx_acc: list[float]) -> None:
        guard.check()
        for key, g, gx in guard.every(session.execute(stmt)):
            j = index.get(bucket_value(key), n)
            g_acc[j] += float(g or 0.0)
            gx_acc[j] += float(gx or 0.0)

    ur = UsageRecord
    overlapping = (ur.ended_at > start, ur.started_at < end)
    for col, g_acc, gx_acc in (
        (_clamp(ur.started_at, low=start), g_s, gx_s),
        (_clamp(ur.ended_at, high=end), g_e, gx_e),
    ):
        key = bucket_start(col, bucket, dialect)
        accumulate(scope.apply(
            select(key, func.sum(ur.gpus), func.sum(ur.gpus * (epoch_s(col, dialect) - origin)))
            .where(*overlapping).group_by(key), ur.project_id), g_acc, gx_acc)
    if now > start:
        run_end = min(now, end)
        js = _clamp(Job.started_at, low=start)
        key = bucket_start(js, bucket, dialect)
        running = (Job.state.in_(("starting", "running")), Job.started_at.is_not(None),
                   Job.started_at < run_end)
        accumulate(scope.apply(
            select(key, func.sum(Job.gpus), func.sum(Job.gpus * (epoch_s(js, dialect) - origin)))
            .where(*running).group_by(key), Job.project_id), g_s, gx_s)
        guard.check()
        total = float(session.scalar(scope.apply(
            select(func.coalesce(func.sum(Job.gpus), 0)).where(*running), Job.project_id)) or 0)
        j = bisect.bisect_right(points, run_end) - 1 if run_end > start else 0
        g_e[min(j, n - 1) if run_end < end else n] += total
        gx_e[min(j, n - 1) if run_end < end else n] += total * (run_end.timestamp() - origin)

    # Prefix sums of g*x (j < k) and suffix sums of g (j >= k): every A(points[k]) in one
    # pass, linear in the number of buckets.
    pre_gx_e, pre_gx_s = _prefix(gx_e), _prefix(gx_s)
    suf_g_e, suf_g_s = _suffix(g_e), _suffix(g_s)

    def area(k: int) -> float:
        """A(points[k]) in GPU-seconds."""
        t = points[k].timestamp() - origin
        return (pre_gx_e[k] + t * suf_g_e[k]) - (pre_gx_s[k] + t * suf_g_s[k])

    areas = [area(k) for k in guard.every(range(n))]
    busy = [max(areas[b + 1] - areas[b], 0.0) for b in range(n - 1)]
    rows: list[dict[str, Any]] = []
    now_s = now.timestamp()
    for b in guard.every(range(n - 1)):
        lo_b = points[b].timestamp()
        hi_b = min(points[b + 1].timestamp(), max(now_s, lo_b))
        capacity_h = total_gpus * max(hi_b - lo_b, 0.0) / 3600.0
        used_h = float(busy[b]) / 3600.0
        rows.append({
            "period": edges[b],
            "busy_gpu_hours": used_h,
            "capacity_gpu_hours": capacity_h,
            "utilisation": used_h / capacity_h if capacity_h > 0 else 0.0,
        })
    used_total = sum(r["busy_gpu_hours"] for r in rows)
    cap_total = sum(r["capacity_gpu_hours"] for r in rows)
    return ReportTable(
        name="utilisation", title=f"Utilisation per {bucket}",
        columns=(Column("period", "Period start (UTC)", numeric=False),
                 Column("busy_gpu_hours", "Busy GPU-hours"),
                 Column("capacity_gpu_hours", "Capacity GPU-hours"),
                 Column("utilisation", "Utilisation (0-1)", digits=3)),
        rows=rows, start=start, end=end, grouping=bucket,
        totals={"busy_gpu_hours": used_total, "capacity_gpu_hours": cap_total,
                "utilisation": used_total / cap_total if cap_total > 0 else 0.0},
        assumptions=(f"Capacity: {total_gpus} GPUs all the time (drained nodes count as "
                     "capacity).",
                     "Busy time of a run is split exactly over the buckets it overlaps; "
                     "running jobs count until now."),
    )


