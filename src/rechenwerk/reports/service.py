"""Usage reports: GPU-hours by project, organisation, organisation kind, call/access mode,
GPU type and period; utilisation of the centre over time; waiting times (median, p90) by
QOS and job size; energy and CO2 per project.

Sources and rules (also in docs/portal.md):

- GPU-hours are the *settled* usage records (``usage_records``), one per run of a job or
  per imported Slurm job; a record counts in the range that contains its end.
- Utilisation adds the still-running jobs (from their start until now) and splits every
  run exactly over the time buckets it overlaps; capacity is GPUs x bucket length.
- Waiting time is ``started_at - submitted_at`` of jobs that started in the range.
- Energy and CO2 use the hardware catalogue (``rechenwerk.planning``): IT power per GPU =
  TDP x power fraction + node overhead, times PUE, times the grid's carbon intensity.

Authorisation: operators see everything; anyone else sees only the projects they belong
to (the same membership rule as the jobs and balance APIs).
"""

from __future__ import annotations

import bisect
import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, case, func, literal, select, tuple_
from sqlalchemy.orm import Session

from rechenwerk.access.models import (
    Award,
    AwardPeriod,
    Call,
    Organization,
    Project,
    Proposal,
    User,
)
from rechenwerk.access.visibility import visible_project_ids
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.errors import InvalidInput
from rechenwerk.reports.sql import BUCKETS, bucket_start, bucket_value, dialect_of, epoch_s

GROUPINGS: tuple[str, ...] = ("project", "org", "kind", "call", "mode", "gpu-type", "period")
NO_AWARD = "no award (pay-per-use or overdraft)"
NO_CALL = "direct award (no call)"
WAIT_GROUPINGS: tuple[str, ...] = ("qos", "size", "qos-size")
DEFAULT_RANGE_DAYS = 30
# Bounds on the work one report may ask for (docs/security.md, "Limits"): a range lies
# within these years and spans at most MAX_RANGE_DAYS; a report with time buckets
# (utilisation, usage by period) has at most MAX_BUCKETS of them (10 years of days).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
MAX_RANGE_DAYS = 36_600  # about 100 years
MAX_BUCKETS = 3_700
# Job size classes (GPUs), as operators usually slice them.
SIZE_CLASSES: tuple[tuple[int, int, str], ...] = (
    (1, 1, "1 GPU"),
    (2, 8, "2-8 GPUs"),
    (9, 64, "9-64 GPUs"),
    (65, 512, "65-512 GPUs"),
    (513, 10**9, ">512 GPUs"),
)


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str  # with the unit, e.g. "GPU-hours"
    numeric: bool = True
    digits: int = 1


@dataclass(frozen=True, slots=True)
class ReportTable:
    """One report: labelled columns (with units), rows, the range and the assumptions."""

    name: str
    title: str
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]]
    start: datetime
    end: datetime
    grouping: str = ""
    assumptions: tuple[str, ...] = ()
    totals: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": self.name,
            "title": self.title,
            "grouping": self.grouping,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "columns": [{"key": c.key, "label": c.label} for c in self.columns],
            "rows": [{k: _json_value(v) for k, v in r.items()} for r in self.rows],
            "totals": {k: _json_value(v) for k, v in self.totals.items()},
            "assumptions": list(self.assumptions),
        }

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([c.label for c in self.columns])
        for row in self.rows:
            writer.writerow([_csv_value(row.get(c.key), c) for c in self.columns])
        return buf.getvalue()


def _json_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, float):
        return round(v, 6) if math.isfinite(v) else None
    return v


def _csv_value(v: Any, col: Column) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.date().isoformat()
    if isinstance(v, float):
        return f"{v:.{max(col.digits, 3)}f}"
    return str(v)


# --------------------------------------------------------------------------- scope


@dataclass(frozen=True, slots=True)
class Scope:
    """Which projects a report may include: None = all (operators)."""

    project_ids: tuple[int, ...] | None

    def apply(self, stmt: Any, column: Any) -> Any:
        if self.project_ids is None:
            return stmt
        return stmt.where(column.in_(self.project_ids) if self.project_ids else literal(False))


def scope_for(session: Session, user: User) -> Scope:
    """The projects ``user`` may see (``access.visibility``). Unlike the other lists the
    ids are loaded here, on purpose: the portal keys its report cache on them."""
    visible = visible_project_ids(session, user)
    if visible is None:
        return Scope(None)
    return Scope(tuple(sorted(session.scalars(visible))))


def resolve_range(
    start: datetime | None, end: datetime | None, *, now: datetime
) -> tuple[datetime, datetime]:
    """Default: the last 30 days up to ``now``; both ends UTC; start before end; both
    within [EARLIEST, LATEST] and at most MAX_RANGE_DAYS apart."""
    end = _within_years((end or now), "to")
    start = _within_years(start, "from") if start is not None else max(
        end - timedelta(days=DEFAULT_RANGE_DAYS), EARLIEST)
    if start >= end:
        raise InvalidInput(
            f"the range is empty: from {start:%Y-%m-%d %H:%M} is not before to "
            f"{end:%Y-%m-%d %H:%M}",
            field="from",
            hint="Give --from earlier than --to (dates as YYYY-MM-DD, UTC).",
        )
    if end - start > timedelta(days=MAX_RANGE_DAYS):
        raise InvalidInput(
            f"the range from {start:%Y-%m-%d} to {end:%Y-%m-%d} spans "
            f"{(end - start).days} days; a report covers at most {MAX_RANGE_DAYS} days "
            "(about 100 years)",
            field="from",
            hint="Ask for a shorter range (a later --from or an earlier --to).",
        )
    return start, end


def _within_years(value: datetime, name: str) -> datetime:
    """``value`` in UTC, refused (422 naming ``name``) outside [EARLIEST, LATEST]."""
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        utc = EARLIEST if value.year < 5000 else LATEST + timedelta(days=1)
    if not EARLIEST <= utc <= LATEST:
        raise InvalidInput(
            f"{name} {value.isoformat()} is outside the dates reports cover "
            f"({EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d})",
            field=name,
            hint=f"Give a date between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} "
                 "(YYYY-MM-DD, UTC).",
        )
    return utc


def bucket_count(start: datetime, end: datetime, bucket: str) -> int:
    """How many ``bucket``s (day, week, month) the range [start, end) touches (the rows of
    a report), computed without walking them."""
    first = _bucket_floor(start, bucket)
    if bucket == "month":
        months = (end.year - first.year) * 12 + end.month - first.month
        return months + (1 if end > _bucket_floor(end, "month") else 0)
    step = timedelta(days=7 if bucket == "week" else 1)
    return -((first - end) // step)  # ceil((end - first) / step)


def check_buckets(start: datetime, end: datetime, bucket: str) -> None:
    """Refuse (422 naming ``period``) a report of more than MAX_BUCKETS buckets."""
    n = bucket_count(start, end, bucket)
    if n > MAX_BUCKETS:
        raise InvalidInput(
            f"the range from {start:%Y-%m-%d} to {end:%Y-%m-%d} has {n} {bucket}s; "
            f"a report has at most {MAX_BUCKETS} periods",
            field="period",
            hint="Ask for a larger period (week or month) or a shorter range.",
        )


def _check_choice(value: str, choices: Sequence[str], field_name: str) -> str:
    if value not in choices:
        raise InvalidInput(
            f"{field_name} {value!r} is not valid",
            field=field_name,
            hint="Use one of: " + ", ".join(choices) + ".",
        )
    return value


# --------------------------------------------------------------------------- usage


def usage_report(
    session: Session,
    *,
    scope: Scope,
    by: str = "project",
    start: datetime,
    end: datetime,
    bucket: str = "month",
) -> ReportTable:
    """Settled GPU-hours grouped by ``by`` (see ``GROUPINGS``) for records ending in
    [start, end)."""
    _check_choice(by, GROUPINGS, "by")
    _check_choice(bucket, BUCKETS, "period")
    if by == "period":
        check_buckets(start, end, bucket)
    dialect = dialect_of(session)
    ur = UsageRecord
    hours = func.coalesce(func.sum(ur.gpu_hours), 0.0)
    jobs = func.count()  # runs: one usage record per run of a job or imported Slurm job
    label_col: Any
    key_col: Any
    stmt: Select[Any]
    if by == "project":
        key_col, label_col = Project.slug, Project.title
        stmt = select(key_col, label_col, hours, jobs).join(Project, Project.id == ur.project_id)
        group: tuple[Any, ...] = (Project.slug, Project.title)
    elif by in ("org", "kind"):
        key_col = Organization.name if by == "org" else Organization.kind
        label_col = Organization.kind
        stmt = (select(key_col, label_col, hours, jobs)
                .join(Project, Project.id == ur.project_id)
                .join(Organization, Organization.id == Project.organization_id))
        group = (key_col,) if by == "kind" else (Organization.name, Organization.kind)
    elif by == "call":
        key_col = func.coalesce(Call.slug, literal("(none)"))
        label_col = func.coalesce(Call.access_mode, literal(""))
        stmt = (select(key_col, label_col, hours, jobs)
                .outerjoin(AwardPeriod, AwardPeriod.id == ur.award_period_id)
                .outerjoin(Award, Award.id == AwardPeriod.award_id)
                .outerjoin(Proposal, Proposal.id == Award.proposal_id)
                .outerjoin(Call, Call.id == Proposal.call_id))
        group = (Call.slug, Call.access_mode)
    elif by == "mode":
        key_col = func.coalesce(Call.access_mode, case(
            (ur.award_period_id.is_(None), literal(NO_AWARD)), else_=literal(NO_CALL)))
        label_col = key_col
        stmt = (select(key_col, label_col, hours, jobs)
                .outerjoin(AwardPeriod, AwardPeriod.id == ur.award_period_id)
                .outerjoin(Award, Award.id == AwardPeriod.award_id)
                .outerjoin(Proposal, Proposal.id == Award.proposal_id)
                .outerjoin(Call, Call.id == Proposal.call_id))
        group = (key_col,)
    elif by == "gpu-type":
        key_col = func.coalesce(ur.gpu_type, literal("unknown"))
        label_col = key_col
        stmt = select(key_col, label_col, hours, jobs)
        group = (ur.gpu_type,)
    else:  # period
        key_col = bucket_start(ur.ended_at, bucket, dialect)
        label_col = key_col
        stmt = select(key_col, label_col, hours, jobs)
        group = (key_col,)
    stmt = stmt.select_from(ur) if by in ("gpu-type", "period", "call", "mode") else stmt
    stmt = stmt.where(ur.ended_at >= start, ur.ended_at < end)
    stmt = scope.apply(stmt, ur.project_id).group_by(*group)
    raw = session.execute(stmt).all()

    rows: list[dict[str, Any]] = []
    for r in raw:
        key, label, gpu_hours, n_jobs = r[0], r[1], float(r[2] or 0.0), int(r[3] or 0)
        row: dict[str, Any] = {"key": key, "gpu_hours": gpu_hours, "jobs": n_jobs}
        if by == "project":
            row["label"] = label
        elif by == "org":
            row["label"] = str(label).replace("_", " ")
        elif by == "kind":
            row["key"] = str(key)
            row["label"] = str(key).replace("_", " ")
        elif by == "call":
            row["label"] = (str(label).replace("_", " ") if key != "(none)"
                            else f"{NO_CALL} or {NO_AWARD}")
        elif by == "mode":
            row["label"] = str(key).replace("_", " ")
        elif by == "period":
            row["key"] = bucket_value(key)
            row["label"] = f"{bucket} from {bucket_value(key):%Y-%m-%d}"
        else:
            row["label"] = str(label)
        rows.append(row)
    if by == "period":
        rows.sort(key=lambda r: r["key"])
    else:
        rows.sort(key=lambda r: (-r["gpu_hours"], str(r["key"])))
    total = sum(r["gpu_hours"] for r in rows)
    for row in rows:
        row["share"] = row["gpu_hours"] / total if total > 0 else 0.0
    key_label = {"project": "Project", "org": "Organisation", "kind": "Organisation kind",
                 "call": "Call", "mode": "Access mode", "gpu-type": "GPU type",
                 "period": "Period start (UTC)"}[by]
    label_label = {"project": "Title", "org": "Kind", "kind": "Kind", "call": "Access mode",
                   "mode": "Access mode", "gpu-type": "GPU type", "period": "Period"}[by]
    columns = (
        Column("key", key_label, numeric=False),
        Column("label", label_label, numeric=False),
        Column("gpu_hours", "GPU-hours"),
        Column("jobs", "Runs", digits=0),
        Column("share", "Share of GPU-hours", digits=3),
    )
    return ReportTable(
        name="usage", title=f"GPU-hours by {key_label.lower()}", columns=columns, rows=rows,
        start=start, end=end, grouping=by if by != "period" else f"period:{bucket}",
        totals={"gpu_hours": total, "jobs": sum(r["jobs"] for r in rows)},
        assumptions=("Settled usage records; a run counts in the range containing its end.",),
    )


# --------------------------------------------------------------------------- utilisation


def _bucket_floor(t: datetime, bucket: str) -> datetime:
    """The start of the day, week (Monday) or month containing ``t``."""
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if bucket == "day":
        return day
    if bucket == "week":
        return day - timedelta(days=t.weekday())
    return day.replace(day=1)


def _bucket_edges(start: datetime, end: datetime, bucket: str) -> list[datetime]:
    """Edges from the bucket containing ``start`` up to past ``end``."""
    cur = _bucket_floor(start, bucket)
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
    from sqlalchemy import case

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
) -> ReportTable:
    """Busy GPU-hours per bucket over capacity (``total_gpus`` x bucket length).

    Finished runs come from the usage records, running jobs from the jobs table (from
    their start until ``now``); each run is split exactly over the buckets it overlaps.

    The database does the heavy lifting: with every run clipped to [start, end], the busy
    GPU-seconds up to time t are ``A(t) = sum_i g_i * (min(t, e_i) - min(t, s_i))``, and
    ``A`` at every bucket edge follows from per-bucket sums of ``g`` and ``g * s`` (and
    ``g`` and ``g * e``) grouped by the bucket that contains ``s`` (``e``). A bucket's busy
    time is ``A(hi) - A(lo)``: exact, and two small GROUP BY queries per source instead
    of shipping every run to Python.
    """
    from rechenwerk.jobs.models import Job

    _check_choice(bucket, BUCKETS, "period")
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
        for key, g, gx in session.execute(stmt):
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

    areas = [area(k) for k in range(n)]
    busy = [max(areas[b + 1] - areas[b], 0.0) for b in range(n - 1)]
    rows: list[dict[str, Any]] = []
    now_s = now.timestamp()
    for b in range(n - 1):
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


# --------------------------------------------------------------------------- waits


def size_class(gpus: int) -> str:
    for lo, hi, label in SIZE_CLASSES:
        if lo <= gpus <= hi:
            return label
    return SIZE_CLASSES[-1][2]


def waits_report(
    session: Session, *, scope: Scope, start: datetime, end: datetime, by: str = "qos-size",
) -> ReportTable:
    """Median and p90 of the wait (start - submit) of jobs that started in [start, end)."""
    from rechenwerk.jobs.models import Job

    _check_choice(by, WAIT_GROUPINGS, "by")
    dialect = dialect_of(session)
    wait = (epoch_s(Job.started_at, dialect) - epoch_s(Job.submitted_at, dialect)) / 3600.0
    size = case(*[(Job.gpus <= hi, literal(label)) for _, hi, label in SIZE_CLASSES[:-1]],
                else_=literal(SIZE_CLASSES[-1][2]))
    qos_key = Job.qos if by != "size" else literal("all")
    size_key = size if by != "qos" else literal("all")
    where = (Job.started_at.is_not(None), Job.started_at >= start, Job.started_at < end)
    order = {label: i for i, (_, _, label) in enumerate(SIZE_CLASSES)}
    rows: list[dict[str, Any]] = []
    totals: dict[str, Any]
    if dialect == "postgresql":
        # The database computes the percentiles (linear interpolation, as numpy's default).
        # One scan: the groups and the grand total through GROUPING SETS.
        w = func.greatest(wait, 0.0)
        grand = func.grouping(qos_key, size_key)
        stmt = scope.apply(select(
            qos_key, size_key, grand, func.count(),
            func.percentile_cont(0.5).within_group(w),
            func.percentile_cont(0.9).within_group(w), func.avg(w),
        ).where(*where).group_by(func.grouping_sets(tuple_(qos_key, size_key), tuple_())),
            Job.project_id)
        totals = {"jobs": 0}
        for qos, sz, is_total, count, med, p90, mean in session.execute(stmt):
            if is_total:
                totals = {"jobs": int(count)}
                if count:
                    totals |= {"median_wait_h": float(med), "p90_wait_h": float(p90)}
                continue
            rows.append({"qos": str(qos), "size": str(sz), "jobs": int(count),
                         "median_wait_h": float(med), "p90_wait_h": float(p90),
                         "mean_wait_h": float(mean)})
    else:
        import numpy as np

        groups: dict[tuple[str, str], list[float]] = {}
        for qos, sz, w in session.execute(scope.apply(select(qos_key, size_key, wait)
                                                      .where(*where), Job.project_id)):
            groups.setdefault((str(qos), str(sz)), []).append(max(float(w), 0.0))
        for (qos, sz), waits in groups.items():
            arr = np.asarray(waits)
            rows.append({"qos": qos, "size": sz, "jobs": len(waits),
                         "median_wait_h": float(np.percentile(arr, 50)),
                         "p90_wait_h": float(np.percentile(arr, 90)),
                         "mean_wait_h": float(arr.mean())})
        all_waits = np.asarray([w for ws in groups.values() for w in ws])
        totals = {"jobs": int(all_waits.size)}
        if all_waits.size:
            totals |= {"median_wait_h": float(np.percentile(all_waits, 50)),
                       "p90_wait_h": float(np.percentile(all_waits, 90))}
    rows.sort(key=lambda r: (r["qos"], order.get(r["size"], -1)))
    return ReportTable(
        name="waits", title="Waiting time by QOS and job size",
        columns=(Column("qos", "QOS", numeric=False), Column("size", "Job size", numeric=False),
                 Column("jobs", "Jobs", digits=0),
                 Column("median_wait_h", "Median wait (hours)", digits=2),
                 Column("p90_wait_h", "p90 wait (hours)", digits=2),
                 Column("mean_wait_h", "Mean wait (hours)", digits=2)),
        rows=rows, start=start, end=end, grouping=by, totals=totals,
        assumptions=("Wait = start - submit of the latest start, for jobs that started "
                     "in the range (jobs still pending are not included).",),
    )


# --------------------------------------------------------------------------- energy


def energy_report(
    session: Session, *, scope: Scope, start: datetime, end: datetime,
    country: str | None = None, pue: float | None = None,
) -> ReportTable:
    """Energy (MWh) and CO2 (t CO2e) per project from settled GPU-hours per GPU type and the
    hardware catalogue's power figures."""
    from rechenwerk.planning.energy import EnergyParams, energy_and_cost, it_power_per_gpu_w
    from rechenwerk.planning.hardware import default_catalogue

    base = EnergyParams()
    params = EnergyParams(country=country or base.country, pue=pue if pue is not None
                          else base.pue)
    params.validate()
    catalogue = default_catalogue()
    ur = UsageRecord
    stmt = scope.apply(
        select(Project.slug, ur.gpu_type, func.sum(ur.gpu_hours))
        .join(Project, Project.id == ur.project_id)
        .where(ur.ended_at >= start, ur.ended_at < end)
        .group_by(Project.slug, ur.gpu_type),
        ur.project_id,
    )
    fallback = catalogue.names[0] if "A100-80GB" not in catalogue.gpus else "A100-80GB"
    per_project: dict[str, dict[str, float]] = {}
    unknown_types: set[str] = set()
    powers: dict[str, float] = {}
    grid = None
    for slug, gpu_type, hours in session.execute(stmt):
        name = str(gpu_type or "")
        try:
            spec = catalogue.get(name) if name else catalogue.get(fallback)
        except InvalidInput:
            unknown_types.add(name)
            spec = catalogue.get(fallback)
        cost = energy_and_cost(spec, float(hours or 0.0), params)
        grid = cost.grid
        powers[spec.name] = it_power_per_gpu_w(spec, params)
        acc = per_project.setdefault(str(slug), {"gpu_hours": 0.0, "energy_mwh": 0.0,
                                                 "co2_t": 0.0})
        acc["gpu_hours"] += float(hours or 0.0)
        acc["energy_mwh"] += cost.energy_mwh
        acc["co2_t"] += cost.co2_t
    rows = [{"project": slug, **vals, "kwh_per_gpu_hour": (vals["energy_mwh"] * 1000.0 /
                                                         vals["gpu_hours"]
                                                         if vals["gpu_hours"] else 0.0)}
            for slug, vals in sorted(per_project.items(), key=lambda kv: -kv[1]["energy_mwh"])]
    from rechenwerk.planning.energy import resolve_grid

    grid = grid or resolve_grid(params.country, params.grid_intensity_g_per_kwh)
    assumptions = [
        f"IT power per GPU = TDP x {params.power_fraction:g} (mean board power during "
        "training) + the catalogue's node overhead (host, network) per GPU; "
        + "; ".join(f"{n}: {w:.0f} W" for n, w in sorted(powers.items())),
        f"PUE {params.pue:g} (cooling and power distribution).",
        f"Grid carbon intensity {grid.g_per_kwh:g} g CO2e/kWh ({grid.name}, "
        f"{grid.source}).",
        "GPU-hours are the settled usage records ending in the range.",
    ]
    if unknown_types:
        assumptions.append(
            "GPU types not in the hardware catalogue were counted as " + fallback + ": "
            + ", ".join(sorted(unknown_types)) + ".")
    return ReportTable(
        name="energy", title="Energy and CO2 per project",
        columns=(Column("project", "Project", numeric=False),
                 Column("gpu_hours", "GPU-hours"),
                 Column("energy_mwh", "Energy (MWh)", digits=3),
                 Column("co2_t", "t CO2e", digits=3),
                 Column("kwh_per_gpu_hour", "kWh per GPU-hour", digits=3)),
        rows=rows, start=start, end=end, grouping="project",
        totals={"gpu_hours": sum(r["gpu_hours"] for r in rows),
                "energy_mwh": sum(r["energy_mwh"] for r in rows),
                "co2_t": sum(r["co2_t"] for r in rows)},
        assumptions=tuple(assumptions),
    )
