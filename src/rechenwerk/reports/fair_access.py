"""Fair access, measured: did the projects that wanted GPU-time get what they were awarded,
and do SMEs and startups wait longer than research groups?

Two sections of the funder report (``reports/funder.py``), for a range [from, to):

- ``fair-access``: one row per award period overlapping the range whose project had
  *demand* in it: the period's awarded GPU-hours, the GPU-hours it *received* and their
  ratio, the project's organisation kind and the jobs that made its demand.
- ``fair-access-kind``: per organisation kind, those periods summed (received over
  awarded), the median and the lowest share of a period, and the p50 / p90 wait of the
  kind's jobs that started in the range (the ``waits`` section, ``waits_report``).

Definitions (also in docs/portal.md, "Fair access"):

- A project has *demand* in an award period [s, e) when at least one of its jobs was
  submitted in it or was still waiting at its start: ``submitted_at < e`` and
  (``submitted_at >= s``, or the job had neither started nor ended by ``s``: the
  first of ``started_at`` / ``ended_at`` is missing or not before ``s``). A job that runs
  across ``s`` after starting earlier is not demand (it is service); a job cancelled
  before ever starting counts in the periods it waited in. Demand is the project's, not
  the award's: a project with two awards has demand in both.
- *Awarded*: the period's GPU-hours (the whole period, also when it lies only partly in
  the range). *Received*: the settled usage records charged to the period
  (``usage_records.award_period_id``), whenever they ended; a period still running
  shows what it received so far (``open``: it ends after the range).
- Periods whose project had no demand are left out of the rows and of the sums (a
  project that asked for nothing cannot have been refused); the totals count them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from rechenwerk.access.models import Award, AwardPeriod, Organization, Project
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.reports.guard import NO_GUARD, Guard
from rechenwerk.reports.tables import Column, ReportTable

DEMAND_NOTE = ("Demand: a job of the project submitted in the award period, or submitted "
               "before it and neither started nor ended by its start. Awarded: the whole "
               "period's GPU-hours; received: the settled usage records charged to it. "
               "Periods without demand are not in the rows or the sums.")


def _percentile(values: list[float], q: float) -> float | None:
    from rechenwerk.reports.funder import percentile

    return percentile(values, q)


def fair_access_periods(session: Session, start: datetime, end: datetime,
                        guard: Guard = NO_GUARD) -> ReportTable:
    """One row per award period overlapping [start, end) whose project had demand in it
    (module docstring); three queries: the periods, their demand, their usage."""
    from rechenwerk.jobs.models import Job

    ap = AwardPeriod
    overlap = (ap.starts_at < end, ap.ends_at > start)
    guard.check()
    periods = session.execute(
        select(ap.id, ap.starts_at, ap.ends_at, ap.gpu_hours, Project.slug,
               Organization.kind)
        .join(Award, Award.id == ap.award_id)
        .join(Project, Project.id == Award.project_id)
        .join(Organization, Organization.id == Project.organization_id)
        .where(*overlap).order_by(ap.starts_at, Project.slug, ap.id)).all()
    first_end = func.coalesce(Job.started_at, Job.ended_at)
    guard.check()
    demand: dict[int, int] = {int(pid): int(n) for pid, n in session.execute(
        select(ap.id, func.count(Job.id))
        .join(Award, Award.id == ap.award_id)
        .join(Job, Job.project_id == Award.project_id)
        .where(*overlap, Job.submitted_at < ap.ends_at,
               or_(Job.submitted_at >= ap.starts_at, first_end.is_(None),
                   first_end >= ap.starts_at))
        .group_by(ap.id))}
    ur = UsageRecord
    guard.check()
    received: dict[int, float] = {int(pid or 0): float(h or 0.0) for pid, h in session.execute(
        select(ur.award_period_id, func.coalesce(func.sum(ur.gpu_hours), 0.0))
        .join(ap, ap.id == ur.award_period_id).where(*overlap)
        .group_by(ur.award_period_id))}
    rows: list[dict[str, Any]] = []
    without = 0
    without_hours = 0.0
    for pid, p_start, p_end, hours, slug, kind in guard.every(periods):
        jobs = demand.get(int(pid), 0)
        if jobs == 0:
            without += 1
            without_hours += float(hours)
            continue
        got = received.get(int(pid), 0.0)
        rows.append({"project": str(slug), "kind": str(kind), "period_id": int(pid),
                     "from": p_start.date().isoformat(), "to": p_end.date().isoformat(),
                     "open": "yes" if p_end > end else "no",
                     "demand_jobs": jobs, "awarded_gpu_hours": float(hours),
                     "received_gpu_hours": got,
                     "received_share": got / float(hours) if hours > 0 else None})
    shares = [r["received_share"] for r in rows if r["received_share"] is not None]
    awarded = sum(r["awarded_gpu_hours"] for r in rows)
    got_total = sum(r["received_gpu_hours"] for r in rows)
    return ReportTable(
        name="funder", title="Fair access: awarded GPU-hours received per award period",
        columns=(Column("project", "Project", numeric=False),
                 Column("kind", "Organisation kind", numeric=False),
                 Column("from", "Period from (UTC)", numeric=False),
                 Column("to", "Period to (UTC, exclusive)", numeric=False),
                 Column("open", "Ends after the range", numeric=False),
                 Column("demand_jobs", "Jobs with demand", digits=0),
                 Column("awarded_gpu_hours", "Awarded GPU-hours"),
                 Column("received_gpu_hours", "Received GPU-hours"),
                 Column("received_share", "Share received", digits=3)),
        rows=rows, start=start, end=end, grouping="fair-access",
        totals={"periods_with_demand": len(rows), "periods_without_demand": without,
                "awarded_gpu_hours_without_demand": without_hours,
                "awarded_gpu_hours": awarded, "received_gpu_hours": got_total,
                "received_share": got_total / awarded if awarded > 0 else None,
                "median_share": _percentile(shares, 50),
                "lowest_share": min(shares) if shares else None},
        assumptions=(DEMAND_NOTE, "A period that ends after the range shows what it "
                     "received so far. Share received = received / awarded; above 1 "
                     "when overdraft or carried-over hours were used."))


def fair_access_by_kind(periods: ReportTable, waits: ReportTable) -> ReportTable:
    """Per organisation kind: the ``fair-access`` rows summed (received / awarded, the
    median and the lowest share of a period) and the p50 / p90 wait of its jobs from the
    ``waits`` section (rows keyed ``kind``)."""
    kinds: dict[str, dict[str, Any]] = {}

    def row(kind: str) -> dict[str, Any]:
        return kinds.setdefault(kind, {
            "kind": kind, "projects": set(), "periods": 0, "awarded_gpu_hours": 0.0,
            "received_gpu_hours": 0.0, "shares": [], "jobs_started": 0,
            "p50_wait_h": None, "p90_wait_h": None})

    for r in periods.rows:
        k = row(str(r["kind"]))
        k["projects"].add(r["project"])
        k["periods"] += 1
        k["awarded_gpu_hours"] += r["awarded_gpu_hours"]
        k["received_gpu_hours"] += r["received_gpu_hours"]
        if r["received_share"] is not None:
            k["shares"].append(r["received_share"])
    for w in waits.rows:
        k = row(str(w["kind"]))
        k["jobs_started"] = int(w["jobs"])
        k["p50_wait_h"], k["p90_wait_h"] = w.get("median_wait_h"), w.get("p90_wait_h")
    rows: list[dict[str, Any]] = []
    for name in sorted(kinds):
        k = kinds[name]
        shares: list[float] = k.pop("shares")
        rows.append(k | {
            "projects": len(k["projects"]),
            "received_share": (k["received_gpu_hours"] / k["awarded_gpu_hours"]
                               if k["awarded_gpu_hours"] > 0 else None),
            "median_share": _percentile(shares, 50),
            "lowest_share": min(shares) if shares else None})
    return ReportTable(
        name="funder", title="Fair access by organisation kind: GPU-hours received and "
        "waits",
        columns=(Column("kind", "Organisation kind", numeric=False),
                 Column("projects", "Projects with demand", digits=0),
                 Column("periods", "Periods with demand", digits=0),
                 Column("awarded_gpu_hours", "Awarded GPU-hours"),
                 Column("received_gpu_hours", "Received GPU-hours"),
                 Column("received_share", "Share received", digits=3),
                 Column("median_share", "Median share of a period", digits=3),
                 Column("lowest_share", "Lowest share of a period", digits=3),
                 Column("jobs_started", "Jobs started", digits=0),
                 Column("p50_wait_h", "p50 wait (hours)", digits=2),
                 Column("p90_wait_h", "p90 wait (hours)", digits=2)),
        rows=rows, start=periods.start, end=periods.end, grouping="fair-access-kind",
        totals={k: periods.totals[k] for k in ("periods_with_demand", "awarded_gpu_hours",
                                               "received_gpu_hours", "received_share")}
        | {"jobs_started": waits.totals.get("jobs", 0),
           "p50_wait_h": waits.totals.get("median_wait_h"),
           "p90_wait_h": waits.totals.get("p90_wait_h")},
        assumptions=(DEMAND_NOTE, "Shares: the kind's received over its awarded "
                     "GPU-hours, and the median and lowest of its periods' shares. Waits: "
                     "start - submit of the kind's jobs that started in the range (the "
                     "waits section), percentiles by linear interpolation."))
