"""Usage reports: GPU-hours by project, organisation, organisation kind, call/access mode,
GPU type and period; waiting times (median, p90) by QOS and job size; energy and CO2 per
project. Utilisation over time is ``reports/utilisation.py``; the table, scope and range
every report shares are ``reports/tables.py``.

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

Each report is one aggregating query (two on SQLite for waits) and one pass over its
result, so its cost is linear in the rows the database scans; ``guard`` (see
``reports/guard.py``) is checked before the query and every few hundred result rows.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
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
)
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.errors import InvalidInput
from rechenwerk.jobs.models import Job
from rechenwerk.reports.guard import NO_GUARD, Guard
from rechenwerk.reports.sql import BUCKETS, bucket_start, bucket_value, dialect_of, epoch_s
from rechenwerk.reports.tables import Column, ReportTable, Scope, check_buckets, check_choice

GROUPINGS: tuple[str, ...] = ("project", "org", "kind", "call", "mode", "gpu-type", "period",
                               "job-kind", "cluster")
# usage recorded before clusters were declared, or on the centre's one cluster
NO_CLUSTER = "(the centre's one cluster)"
# usage of imported Slurm jobs (no job of ours) counts as batch work
JOB_KIND_LABELS = {"batch": "batch jobs", "jupyterlab": "interactive sessions (JupyterLab)"}
NO_AWARD = "no award (pay-per-use or overdraft)"
NO_CALL = "direct award (no call)"
WAIT_GROUPINGS: tuple[str, ...] = ("qos", "size", "qos-size", "kind", "kind-size")
# Job size classes (GPUs), as operators usually slice them.
SIZE_CLASSES: tuple[tuple[int, int, str], ...] = (
    (1, 1, "1 GPU"),
    (2, 8, "2-8 GPUs"),
    (9, 64, "9-64 GPUs"),
    (65, 512, "65-512 GPUs"),
    (513, 10**9, ">512 GPUs"),
)


# --------------------------------------------------------------------------- usage


def usage_report(
    session: Session,
    *,
    scope: Scope,
    by: str = "project",
    start: datetime,
    end: datetime,
    bucket: str = "month",
    guard: Guard = NO_GUARD,
) -> ReportTable:
    """Settled GPU-hours grouped by ``by`` (see ``GROUPINGS``) for records ending in
    [start, end)."""
    check_choice(by, GROUPINGS, "by")
    check_choice(bucket, BUCKETS, "period")
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
    elif by == "job-kind":
        key_col = func.coalesce(Job.kind, literal("batch"))
        label_col = key_col
        stmt = select(key_col, label_col, hours, jobs).outerjoin(Job, Job.id == ur.job_id)
        group = (key_col,)
    elif by == "gpu-type":
        key_col = func.coalesce(ur.gpu_type, literal("unknown"))
        label_col = key_col
        stmt = select(key_col, label_col, hours, jobs)
        group = (ur.gpu_type,)
    elif by == "cluster":
        key_col = func.coalesce(ur.cluster, literal(NO_CLUSTER))
        label_col = key_col
        stmt = select(key_col, label_col, hours, jobs)
        group = (ur.cluster,)
    else:  # period
        key_col = bucket_start(ur.ended_at, bucket, dialect)
        label_col = key_col
        stmt = select(key_col, label_col, hours, jobs)
        group = (key_col,)
    stmt = (stmt.select_from(ur) if by in ("gpu-type", "period", "call", "mode", "job-kind",
                                           "cluster")
            else stmt)
    stmt = stmt.where(ur.ended_at >= start, ur.ended_at < end)
    stmt = scope.apply(stmt, ur.project_id).group_by(*group)
    guard.check()
    raw = session.execute(stmt).all()

    rows: list[dict[str, Any]] = []
    for r in guard.every(raw):
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
        elif by == "job-kind":
            row["label"] = JOB_KIND_LABELS.get(str(key), str(key))
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
                 "period": "Period start (UTC)", "job-kind": "Job kind",
                 "cluster": "Cluster"}[by]
    label_label = {"project": "Title", "org": "Kind", "kind": "Kind", "call": "Access mode",
                   "mode": "Access mode", "gpu-type": "GPU type", "period": "Period",
                   "job-kind": "What", "cluster": "Cluster"}[by]
    # Where the label only repeats the key (kind, access mode, GPU type), one column.
    label_column = (() if by in ("kind", "mode", "gpu-type", "cluster")
                    else (Column("label", label_label, numeric=False),))
    columns = (
        Column("key", key_label, numeric=False),
        *label_column,
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


# --------------------------------------------------------------------------- waits


def size_class(gpus: int) -> str:
    for lo, hi, label in SIZE_CLASSES:
        if lo <= gpus <= hi:
            return label
    return SIZE_CLASSES[-1][2]


def waits_report(
    session: Session, *, scope: Scope, start: datetime, end: datetime, by: str = "qos-size",
    guard: Guard = NO_GUARD,
) -> ReportTable:
    """Median and p90 of the wait (start - submit) of jobs that started in [start, end)."""
    from rechenwerk.jobs.models import Job

    check_choice(by, WAIT_GROUPINGS, "by")
    dialect = dialect_of(session)
    wait = (epoch_s(Job.started_at, dialect) - epoch_s(Job.submitted_at, dialect)) / 3600.0
    size = case(*[(Job.gpus <= hi, literal(label)) for _, hi, label in SIZE_CLASSES[:-1]],
                else_=literal(SIZE_CLASSES[-1][2]))
    # the first key: the QOS, or the organisation kind of the job's project (do SMEs and
    # startups wait longer than research groups?); the second: the job's size class
    by_kind = by.startswith("kind")
    first = "kind" if by_kind else "qos"
    qos_key = (Organization.kind if by_kind else Job.qos) if by != "size" else literal("all")
    size_key = size if by not in ("qos", "kind") else literal("all")
    where: tuple[Any, ...] = (Job.started_at.is_not(None), Job.started_at >= start,
                              Job.started_at < end)
    if by_kind:
        where += (Project.id == Job.project_id, Organization.id == Project.organization_id)
    order = {label: i for i, (_, _, label) in enumerate(SIZE_CLASSES)}
    rows: list[dict[str, Any]] = []
    totals: dict[str, Any]
    if dialect == "postgresql":
        # The database computes the percentiles (linear interpolation, as numpy's default).
        # One scan: the groups and the grand total through GROUPING SETS.
        # The keys and the wait computed in a subquery: the sort by the keys then moves
        # three narrow columns, not the timestamps (a third faster over 100,000 jobs).
        inner = scope.apply(select(
            qos_key.label("k1"), size_key.label("k2"),
            func.greatest(wait, 0.0).label("w")).where(*where), Job.project_id).subquery()
        k1, k2, w = inner.c.k1, inner.c.k2, inner.c.w
        stmt = select(
            k1, k2, func.grouping(k1, k2), func.count(),
            func.percentile_cont(0.5).within_group(w),
            func.percentile_cont(0.9).within_group(w), func.avg(w),
        ).group_by(func.grouping_sets(tuple_(k1, k2), tuple_()))
        totals = {"jobs": 0}
        guard.check()
        for qos, sz, is_total, count, med, p90, mean in guard.every(session.execute(stmt)):
            if is_total:
                totals = {"jobs": int(count)}
                if count:
                    totals |= {"median_wait_h": float(med), "p90_wait_h": float(p90)}
                continue
            rows.append({first: str(qos), "size": str(sz), "jobs": int(count),
                         "median_wait_h": float(med), "p90_wait_h": float(p90),
                         "mean_wait_h": float(mean)})
    else:
        import numpy as np

        groups: dict[tuple[str, str], list[float]] = {}
        guard.check()
        for qos, sz, w in guard.every(session.execute(scope.apply(
                select(qos_key, size_key, wait).where(*where), Job.project_id))):
            groups.setdefault((str(qos), str(sz)), []).append(max(float(w), 0.0))
        for (qos, sz), waits in guard.every(groups.items(), 1):
            arr = np.asarray(waits)
            rows.append({first: qos, "size": sz, "jobs": len(waits),
                         "median_wait_h": float(np.percentile(arr, 50)),
                         "p90_wait_h": float(np.percentile(arr, 90)),
                         "mean_wait_h": float(arr.mean())})
        all_waits = np.asarray([w for ws in groups.values() for w in ws])
        totals = {"jobs": int(all_waits.size)}
        if all_waits.size:
            totals |= {"median_wait_h": float(np.percentile(all_waits, 50)),
                       "p90_wait_h": float(np.percentile(all_waits, 90))}
    rows.sort(key=lambda r: (r[first], order.get(r["size"], -1)))
    return ReportTable(
        name="waits",
        title="Waiting time by organisation kind and job size" if by_kind
        else "Waiting time by QOS and job size",
        columns=(Column(first, "Organisation kind" if by_kind else "QOS", numeric=False),
                 Column("size", "Job size", numeric=False),
                 Column("jobs", "Jobs", digits=0),
                 Column("median_wait_h", "Median wait (hours)", digits=2),
                 Column("p90_wait_h", "p90 wait (hours)", digits=2),
                 Column("mean_wait_h", "Mean wait (hours)", digits=2)),
        rows=rows, start=start, end=end, grouping=by, totals=totals,
        assumptions=("Wait = start - submit of the latest start, for jobs that started "
                     "in the range (jobs still pending are not included).",),
    )


# --------------------------------------------------------------------------- energy


def energy_basis(measured: float, estimated: float) -> str:
    """'measured', 'estimated' or 'mixed' for energy figures with these shares ('' for
    none)."""
    if measured > 0 and estimated > 0:
        return "mixed"
    return "measured" if measured > 0 else "estimated" if estimated > 0 else ""


def energy_report(
    session: Session, *, scope: Scope, start: datetime, end: datetime,
    country: str | None = None, pue: float | None = None, guard: Guard = NO_GUARD,
) -> ReportTable:
    """Energy (MWh) and CO2 (t CO2e) per project: measured where the run's record carries
    a measured figure (Slurm's ConsumedEnergy, the local executor's counters), else
    estimated from its GPU-hours per GPU
    type and the hardware catalogue's power figures; each row says which share is which."""
    from rechenwerk.config import get_settings
    from rechenwerk.planning.energy import EnergyParams, energy_and_cost, it_power_per_gpu_w
    from rechenwerk.planning.hardware import default_catalogue

    base = EnergyParams()
    params = EnergyParams(country=country or base.country, pue=pue if pue is not None
                          else base.pue)
    params.validate()
    settings = get_settings()
    catalogue = default_catalogue()
    ur = UsageRecord
    measured = ur.energy_source == "measured"
    month = bucket_start(ur.started_at, "month", dialect_of(session))
    stmt = scope.apply(
        select(Project.slug, ur.gpu_type, measured, month, func.sum(ur.gpu_hours),
               func.sum(ur.energy_kwh))
        .join(Project, Project.id == ur.project_id)
        .where(ur.ended_at >= start, ur.ended_at < end)
        .group_by(Project.slug, ur.gpu_type, measured, month),
        ur.project_id,
    )
    pues: set[float] = set()
    fallback = catalogue.names[0] if "A100-80GB" not in catalogue.gpus else "A100-80GB"
    per_project: dict[str, dict[str, float]] = {}
    unknown_types: set[str] = set()
    powers: dict[str, float] = {}
    from rechenwerk.planning.energy import resolve_grid

    grid = resolve_grid(params.country, params.grid_intensity_g_per_kwh)
    guard.check()
    for slug, gpu_type, is_measured, started, hours, kwh in guard.every(
            session.execute(stmt)):
        acc = per_project.setdefault(str(slug), {
            "gpu_hours": 0.0, "energy_mwh": 0.0, "co2_t": 0.0, "measured_mwh": 0.0,
            "estimated_mwh": 0.0})
        acc["gpu_hours"] += float(hours or 0.0)
        if is_measured:
            # recorded as metered IT energy x the PUE of its month; with --pue that one
            mwh = float(kwh or 0.0) / 1000.0
            if pue is not None:
                mwh *= pue / settings.pue_at(bucket_value(started))
            acc["measured_mwh"] += mwh
            acc["energy_mwh"] += mwh
            acc["co2_t"] += mwh * grid.g_per_kwh / 1000.0
            continue
        name = str(gpu_type or "")
        try:
            spec = catalogue.get(name) if name else catalogue.get(fallback)
        except InvalidInput:
            unknown_types.add(name)
            spec = catalogue.get(fallback)
        # --pue for every run, else the PUE of the month the run started in
        run_params = params if pue is not None else replace(
            params, pue=settings.pue_at(bucket_value(started)))
        pues.add(run_params.pue)
        cost = energy_and_cost(spec, float(hours or 0.0), run_params)
        powers[spec.name] = it_power_per_gpu_w(spec, params)
        acc["estimated_mwh"] += cost.energy_mwh
        acc["energy_mwh"] += cost.energy_mwh
        acc["co2_t"] += cost.co2_t
    rows = [{"project": slug, **vals,
             "basis": energy_basis(vals["measured_mwh"], vals["estimated_mwh"]),
             "kwh_per_gpu_hour": (vals["energy_mwh"] * 1000.0 / vals["gpu_hours"]
                                  if vals["gpu_hours"] else 0.0)}
            for slug, vals in sorted(per_project.items(), key=lambda kv: -kv[1]["energy_mwh"])]
    total_measured = sum(v["measured_mwh"] for v in per_project.values())
    total_estimated = sum(v["estimated_mwh"] for v in per_project.values())
    assumptions = [
        f"Measured: {total_measured:.3f} MWh (the run's metered IT energy: Slurm's "
        "ConsumedEnergy or the local executor's NVML / RAPL counters, x the PUE of the "
        "month it started in, or --pue); estimated: "
        f"{total_estimated:.3f} MWh (every other run, from its GPU-hours as below).",
        f"IT power per GPU = TDP x {params.power_fraction:g} (mean board power during "
        "training) + the catalogue's node overhead (host, network) per GPU; "
        + "; ".join(f"{n}: {w:.0f} W" for n, w in sorted(powers.items())),
        (f"PUE {params.pue:g} (cooling and power distribution) on estimated and measured "
         "energy."
         if pue is not None or not settings.pue_by_period else
         "PUE (cooling and power distribution) on estimated and measured energy: that of "
         "the month each "
         f"run started in (RECHENWERK_PUE_BY_PERIOD {settings.pue_by_period}; "
         f"{', '.join(f'{p:g}' for p in sorted(pues)) or 'none used'}), "
         f"{base.pue:g} before its first month."),
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
                 Column("measured_mwh", "Measured (MWh)", digits=3),
                 Column("estimated_mwh", "Estimated (MWh)", digits=3),
                 Column("basis", "Basis (measured/estimated/mixed)", numeric=False),
                 Column("kwh_per_gpu_hour", "kWh per GPU-hour", digits=3)),
        rows=rows, start=start, end=end, grouping="project",
        totals={"gpu_hours": sum(r["gpu_hours"] for r in rows),
                "energy_mwh": sum(r["energy_mwh"] for r in rows),
                "co2_t": sum(r["co2_t"] for r in rows),
                "measured_mwh": total_measured, "estimated_mwh": total_estimated,
                "basis": energy_basis(total_measured, total_estimated)},
        assumptions=tuple(assumptions),
    )
