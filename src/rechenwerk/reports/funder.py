"""The funder report: what a centre's funders ask of it for a period, in sections.

- ``country``, ``field``, ``field-detail``, ``kind``, ``mode``: awarded and used GPU-hours
  by the country and kind of the project's organisation, the project's field of science
  (OECD FORD major field, and the code as given) and the access mode of the award's call;
  ``kind`` also gives the SME + startup share of the awarded and of the used GPU-hours.
- ``people``: projects and users per organisation kind.
- ``decisions``: days from submission to decision of the proposals decided in the period,
  per access mode (median, p90, count).
- ``deadlines``: the same per call type in working days (``access/workdays.py``, the
  centre's holidays), against the type's deadline: decided by the proposal's ``due_on``
  or late; proposals without ``due_on`` (submitted before call types) apart.
- ``capacity``: per calendar quarter of the range, the centre's capacity in GPU-hours
  (the GPUs of the backend's node inventory x the hours of the quarter inside the range),
  the awarded GPU-hours of the award periods overlapping it (pro rata, as above) and the
  used GPU-hours of the runs ending in it, and both over the capacity.
- ``waits``: waiting time of jobs (p50, p90) per organisation kind (``waits_report``).
- ``fair-access``, ``fair-access-kind``: per award period with demand, the share of its
  awarded GPU-hours its project received, and per organisation kind those shares with
  the kind's p50 / p90 wait (``reports/fair_access.py``).
- ``energy``: energy (kWh) and CO2 (kg) per month, the usage records' ``energy_kwh`` /
  ``co2_kg``: measured (``energy_source``: Slurm's ConsumedEnergy, the local executor's
  NVML / RAPL counters; x the period's PUE) or estimated (the TDP estimate made when a
  run is charged, ``accounting.charging.estimate_energy``), each share apart, the basis
  'measured', 'estimated' or 'mixed'.

Rules (also in docs/portal.md, "Funder report"):

- *Used* GPU-hours are the settled usage records ending in [from, to), as in the usage
  report. *Awarded* GPU-hours are the award periods overlapping [from, to), each counted
  in proportion to the part of its time that lies in the range (a quarterly period half in
  the range counts half).
- Grand totals are over the whole centre: the report is for operators only.

Awarded and used GPU-hours are summed by the database (one GROUP BY per section and
source); proposals (few) are fetched for their decision times.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Select, case, distinct, func, literal, select, union
from sqlalchemy.orm import Session

from rechenwerk.access.fields_of_science import FIELDS, SOURCE, major_of
from rechenwerk.access.models import (
    Award,
    AwardPeriod,
    Call,
    CallType,
    Organization,
    Project,
    ProjectMembership,
    Proposal,
    User,
)
from rechenwerk.access.workdays import working_days_between
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.reports.guard import NO_GUARD, Guard
from rechenwerk.reports.service import NO_AWARD, NO_CALL, energy_basis, waits_report
from rechenwerk.reports.sql import bucket_start, bucket_value, dialect_of, epoch_s
from rechenwerk.reports.tables import Column, ReportTable, Scope, check_choice

SME_KINDS: tuple[str, ...] = ("sme", "startup")
NOT_GIVEN = "(not given)"
ENERGY_NOTE = ("Energy and CO2 are measured where the run's IT energy was metered "
               "(Slurm's ConsumedEnergy of its nodes; on the local executor the NVML "
               "energy counters of its GPUs, else its share of the machine's RAPL "
               "counters) and estimated otherwise: GPU-hours x the GPU type's TDP-based "
               "power (hardware catalogue). Both are facility energy: x the PUE of the "
               "run's period (RECHENWERK_PUE_BY_PERIOD), set when the run is charged; CO2 "
               "uses the default grid's intensity for both. Each month says which share "
               "is which.")
AWARD_NOTE = ("Awarded: award periods overlapping the range, each in proportion to the "
              "share of its time inside the range. Used: settled usage records ending in "
              "the range.")
SECTIONS: tuple[str, ...] = ("country", "field", "field-detail", "kind", "mode", "people",
                             "decisions", "deadlines", "capacity", "waits", "fair-access",
                             "fair-access-kind", "energy")


@dataclass(frozen=True, slots=True)
class FunderReport:
    """The sections of the funder report for [start, end), in ``SECTIONS`` order."""

    start: datetime
    end: datetime
    sections: tuple[ReportTable, ...]

    def section(self, name: str) -> ReportTable:
        check_choice(name, SECTIONS, "section")
        return next(t for t in self.sections if t.grouping == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": "funder",
            "title": "Funder report",
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "energy_basis": self.section("energy").totals.get("basis") or "estimated",
            "notes": [AWARD_NOTE, ENERGY_NOTE],
            "sections": {t.grouping: t.to_dict() for t in self.sections},
        }

    def to_csv(self, section: str | None = None) -> str:
        """One section's CSV, or all of them, each after a ``# title`` line."""
        if section is not None:
            return self.section(section).to_csv()
        return "\n".join(f"# {t.title}\n{t.to_csv()}" for t in self.sections)


# --------------------------------------------------------------------------- sums


def _award_hours(start: datetime, end: datetime, dialect: str) -> Any:
    """SUM of the award periods' GPU-hours, each times the share of its time in range."""
    ap = AwardPeriod
    s0, e0 = start.timestamp(), end.timestamp()
    ps, pe = epoch_s(ap.starts_at, dialect), epoch_s(ap.ends_at, dialect)
    lo = case((ps > s0, ps), else_=literal(s0))
    hi = case((pe < e0, pe), else_=literal(e0))
    # 0 for a period outside the range (the callers' WHERE keeps most of them out)
    share = case((hi <= lo, literal(0.0)), (pe > ps, (hi - lo) / (pe - ps)),
                 else_=literal(1.0))
    return func.coalesce(func.sum(ap.gpu_hours * share), 0.0)


def awarded_by(session: Session, key: Any, start: datetime, end: datetime, *,
               via_call: bool = False, guard: Guard = NO_GUARD) -> dict[str, float]:
    """Awarded GPU-hours in [start, end) by ``key`` (a column of Project, Organization or,
    with ``via_call``, Call)."""
    ap = AwardPeriod
    stmt: Select[Any] = (
        select(key, _award_hours(start, end, dialect_of(session))).select_from(ap)
        .join(Award, Award.id == ap.award_id)
        .join(Project, Project.id == Award.project_id)
        .join(Organization, Organization.id == Project.organization_id))
    if via_call:
        stmt = (stmt.outerjoin(Proposal, Proposal.id == Award.proposal_id)
                .outerjoin(Call, Call.id == Proposal.call_id))
    stmt = stmt.where(ap.starts_at < end, ap.ends_at > start).group_by(key)
    guard.check()
    return {_key(k): float(h or 0.0) for k, h in session.execute(stmt)}


def used_by(session: Session, key: Any, start: datetime, end: datetime, *,
            via_call: bool = False, guard: Guard = NO_GUARD) -> dict[str, float]:
    """Settled GPU-hours of the usage records ending in [start, end) by ``key``."""
    ur = UsageRecord
    stmt: Select[Any] = (
        select(key, func.coalesce(func.sum(ur.gpu_hours), 0.0)).select_from(ur)
        .join(Project, Project.id == ur.project_id)
        .join(Organization, Organization.id == Project.organization_id))
    if via_call:
        stmt = (stmt.outerjoin(AwardPeriod, AwardPeriod.id == ur.award_period_id)
                .outerjoin(Award, Award.id == AwardPeriod.award_id)
                .outerjoin(Proposal, Proposal.id == Award.proposal_id)
                .outerjoin(Call, Call.id == Proposal.call_id))
    stmt = stmt.where(ur.ended_at >= start, ur.ended_at < end).group_by(key)
    guard.check()
    return {_key(k): float(h or 0.0) for k, h in session.execute(stmt)}


def _key(value: Any) -> str:
    return NOT_GIVEN if value is None else str(value)


def merge(awarded: Mapping[str, float], used: Mapping[str, float],
          labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Rows of key, label, awarded and used GPU-hours and their shares of the totals,
    largest awards first."""
    total_a, total_u = sum(awarded.values()), sum(used.values())
    rows: list[dict[str, Any]] = []
    for k in set(awarded) | set(used):
        a, u = awarded.get(k, 0.0), used.get(k, 0.0)
        rows.append({"key": k, "label": (labels or {}).get(k, k.replace("_", " ")),
                     "awarded_gpu_hours": a,
                     "awarded_share": a / total_a if total_a > 0 else 0.0,
                     "used_gpu_hours": u,
                     "used_share": u / total_u if total_u > 0 else 0.0})
    rows.sort(key=lambda r: (-r["awarded_gpu_hours"], -r["used_gpu_hours"], r["key"]))
    return rows


def rollup_majors(by_code: Mapping[str, float]) -> dict[str, float]:
    """GPU-hours by field code summed per major field ("1.2" and "1.5" under "1")."""
    out: dict[str, float] = {}
    for code, hours in by_code.items():
        major = major_of(code) if code in FIELDS else code
        out[major] = out.get(major, 0.0) + hours
    return out


def sme_share(by_kind: Mapping[str, float]) -> float:
    """The SME + startup share of the GPU-hours by organisation kind (0 when none)."""
    total = sum(by_kind.values())
    return sum(by_kind.get(k, 0.0) for k in SME_KINDS) / total if total > 0 else 0.0


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile by linear interpolation (NumPy's default, PostgreSQL's
    ``percentile_cont``); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


# --------------------------------------------------------------------------- sections

_HOURS_COLUMNS = (
    Column("awarded_gpu_hours", "Awarded GPU-hours"),
    Column("awarded_share", "Share of awarded", digits=3),
    Column("used_gpu_hours", "Used GPU-hours"),
    Column("used_share", "Share of used", digits=3),
)


def _hours_table(name: str, title: str, key_label: str, rows: list[dict[str, Any]],
                 start: datetime, end: datetime, *, with_label: bool,
                 totals: dict[str, Any] | None = None,
                 assumptions: Iterable[str] = ()) -> ReportTable:
    cols = (Column("key", key_label, numeric=False),
            *((Column("label", "Name", numeric=False),) if with_label else ()),
            *_HOURS_COLUMNS)
    return ReportTable(
        name="funder", title=title, columns=cols, rows=rows, start=start, end=end,
        grouping=name, totals={"awarded_gpu_hours": sum(r["awarded_gpu_hours"] for r in rows),
                               "used_gpu_hours": sum(r["used_gpu_hours"] for r in rows),
                               **(totals or {})},
        assumptions=(AWARD_NOTE, *assumptions))


def by_country(session: Session, start: datetime, end: datetime,
               guard: Guard = NO_GUARD) -> ReportTable:
    key = Organization.country
    rows = merge(awarded_by(session, key, start, end, guard=guard),
                 used_by(session, key, start, end, guard=guard))
    return _hours_table("country", "GPU-hours by organisation country", "Country (ISO)",
                        rows, start, end, with_label=False,
                        assumptions=("The country of the project's organisation.",))


def by_field(session: Session, start: datetime, end: datetime, guard: Guard = NO_GUARD
             ) -> tuple[ReportTable, ReportTable]:
    """(by major field, by the code as given) of the projects' fields of science."""
    key = Project.field_of_science
    awarded = awarded_by(session, key, start, end, guard=guard)
    used = used_by(session, key, start, end, guard=guard)
    labels = {code: name for code, name in FIELDS.items()} | {NOT_GIVEN: NOT_GIVEN}
    source = (f"Fields of science: {SOURCE}; projects without one count as "
              f"{NOT_GIVEN}.",)
    major = _hours_table(
        "field", "GPU-hours by field of science (major field)", "Field", merge(
            rollup_majors(awarded), rollup_majors(used), labels), start, end,
        with_label=True, assumptions=source)
    detail = _hours_table(
        "field-detail", "GPU-hours by field of science (as given)", "Field",
        merge(awarded, used, labels), start, end, with_label=True, assumptions=source)
    return major, detail


def by_kind(session: Session, start: datetime, end: datetime,
            guard: Guard = NO_GUARD) -> ReportTable:
    key = Organization.kind
    awarded = awarded_by(session, key, start, end, guard=guard)
    used = used_by(session, key, start, end, guard=guard)
    return _hours_table(
        "kind", "GPU-hours by organisation kind", "Organisation kind",
        merge(awarded, used), start, end, with_label=False,
        totals={"sme_startup_awarded_share": sme_share(awarded),
                "sme_startup_used_share": sme_share(used)},
        assumptions=("SME + startup share: GPU-hours of projects of organisations of kind "
                     "sme or startup over all GPU-hours (totals "
                     "sme_startup_awarded_share, sme_startup_used_share).",))


def by_mode(session: Session, start: datetime, end: datetime,
            guard: Guard = NO_GUARD) -> ReportTable:
    awarded = awarded_by(session, func.coalesce(Call.access_mode, literal(NO_CALL)), start,
                         end, via_call=True, guard=guard)
    used_key = func.coalesce(Call.access_mode, case(
        (UsageRecord.award_period_id.is_(None), literal(NO_AWARD)), else_=literal(NO_CALL)))
    used = used_by(session, used_key, start, end, via_call=True, guard=guard)
    return _hours_table(
        "mode", "GPU-hours by access mode of the call", "Access mode", merge(awarded, used),
        start, end, with_label=False,
        assumptions=("The access mode of the call of the award's proposal; awards made "
                     f"without a proposal are '{NO_CALL}', usage outside any award "
                     f"'{NO_AWARD}'.",))


def people_by_kind(session: Session, start: datetime, end: datetime,
                   guard: Guard = NO_GUARD) -> ReportTable:
    """Active projects per kind of their organisation; their members per kind of the
    member's own organisation."""
    ap, ur = AwardPeriod, UsageRecord
    active = union(
        select(Award.project_id.label("pid")).join(ap, ap.award_id == Award.id)
        .where(ap.starts_at < end, ap.ends_at > start),
        select(ur.project_id.label("pid")).where(ur.ended_at >= start, ur.ended_at < end),
    ).subquery()
    guard.check()
    projects: dict[str, int] = {str(k): int(n) for k, n in session.execute(
        select(Organization.kind, func.count(distinct(Project.id)))
        .join(Project, Project.organization_id == Organization.id)
        .where(Project.id.in_(select(active.c.pid))).group_by(Organization.kind))}
    members = select(ProjectMembership.user_id).where(
        ProjectMembership.project_id.in_(select(active.c.pid)))
    users_of_members = _users_by_kind(session, members, guard)
    users_with_runs = _users_by_kind(session, _users_with_runs(start, end), guard)
    kinds = sorted(set(projects) | set(users_of_members) | set(users_with_runs))
    rows = [{"kind": k, "projects": projects.get(k, 0), "members": users_of_members.get(k, 0),
             "users_with_runs": users_with_runs.get(k, 0)} for k in kinds]
    return ReportTable(
        name="funder", title="Projects and users per organisation kind",
        columns=(Column("kind", "Organisation kind", numeric=False),
                 Column("projects", "Active projects", digits=0),
                 Column("members", "Members of active projects", digits=0),
                 Column("users_with_runs", "Users with runs", digits=0)),
        rows=rows, start=start, end=end, grouping="people",
        totals={key: sum(r[key] for r in rows)
                for key in ("projects", "members", "users_with_runs")},
        assumptions=("Active project: an award period overlapping the range or usage ending "
                     "in it; counted under its organisation's kind.",
                     "Members: today's members (PI, member, viewer) of the active projects "
                     "(memberships keep no history), each once, under the kind of their own "
                     "organisation.",
                     "Users with runs: the submitters of the jobs whose settled runs end in "
                     "the range, under the kind of their own organisation (jobs imported "
                     "from Slurm without a Rechenwerk job are not counted)."))


def _users_with_runs(start: datetime, end: datetime) -> Select[Any]:
    from rechenwerk.jobs.models import Job

    ur = UsageRecord
    return (select(Job.user_id).join(ur, ur.job_id == Job.id)
            .where(ur.ended_at >= start, ur.ended_at < end))


def _users_by_kind(session: Session, user_ids: Select[Any], guard: Guard) -> dict[str, int]:
    """How many distinct users of ``user_ids`` per kind of their own organisation."""
    guard.check()
    return {str(k): int(n) for k, n in session.execute(
        select(func.coalesce(Organization.kind, literal(NOT_GIVEN)),
               func.count(distinct(User.id)))
        .select_from(User).outerjoin(Organization, Organization.id == User.organization_id)
        .where(User.id.in_(user_ids)).group_by(Organization.kind))}


def decision_times(session: Session, start: datetime, end: datetime,
                   guard: Guard = NO_GUARD) -> ReportTable:
    """Days from submission to decision of proposals decided in [start, end), per access
    mode of their call."""
    dialect = dialect_of(session)
    days = (epoch_s(Proposal.decided_at, dialect)
            - epoch_s(Proposal.submitted_at, dialect)) / 86400.0
    stmt = (select(Call.access_mode, Proposal.state, days)
            .join(Call, Call.id == Proposal.call_id)
            .where(Proposal.decided_at.is_not(None), Proposal.submitted_at.is_not(None),
                   Proposal.decided_at >= start, Proposal.decided_at < end))
    guard.check()
    groups: dict[str, list[tuple[str, float]]] = {}
    for mode, state, d in guard.every(session.execute(stmt)):
        groups.setdefault(str(mode), []).append((str(state), max(float(d), 0.0)))
    rows = []
    for mode, items in sorted(groups.items()):
        ds = [d for _, d in items]
        rows.append({"mode": mode, "decided": len(items),
                     "accepted": sum(1 for s, _ in items if s == "accepted"),
                     "median_days": percentile(ds, 50), "p90_days": percentile(ds, 90)})
    every = [d for items in groups.values() for _, d in items]
    return ReportTable(
        name="funder", title="Decision times per access mode",
        columns=(Column("mode", "Access mode", numeric=False),
                 Column("decided", "Decided", digits=0),
                 Column("accepted", "Accepted", digits=0),
                 Column("median_days", "Median (days)", digits=1),
                 Column("p90_days", "p90 (days)", digits=1)),
        rows=rows, start=start, end=end, grouping="decisions",
        totals={"decided": len(every), "median_days": percentile(every, 50),
                "p90_days": percentile(every, 90)},
        assumptions=("Proposals decided (accepted or rejected) in the range; time from "
                     "submitted_at to decided_at in calendar days; percentiles by linear "
                     "interpolation.",))


def deadline_times(session: Session, start: datetime, end: datetime,
                   holidays: Collection[date] = frozenset(),
                   guard: Guard = NO_GUARD) -> ReportTable:
    """Working days from submission to decision of proposals decided in [start, end), per
    call type of their call, against the type's deadline: on time when decided on or
    before the proposal's ``due_on``, late after it; without ``due_on`` (submitted before
    call types) "no deadline recorded". ``holidays``: the centre's calendar."""
    stmt = (select(CallType.key, CallType.title, CallType.decision_working_days,
                   Proposal.submitted_at, Proposal.decided_at, Proposal.due_on)
            .join(Call, Call.id == Proposal.call_id)
            .join(CallType, CallType.id == Call.call_type_id)
            .where(Proposal.decided_at.is_not(None), Proposal.submitted_at.is_not(None),
                   Proposal.decided_at >= start, Proposal.decided_at < end))
    guard.check()
    types: dict[str, tuple[str, int]] = {}
    groups: dict[str, list[tuple[int, bool | None]]] = {}
    for key, title, deadline, submitted, decided, due in guard.every(session.execute(stmt)):
        if submitted is None or decided is None:  # excluded by the query already
            continue
        types[key] = (str(title), int(deadline))
        days = working_days_between(submitted.date(), decided.date(), holidays)
        groups.setdefault(key, []).append(
            (days, None if due is None else decided.date() <= due))
    rows = []
    for key in sorted(groups):
        items = groups[key]
        rows.append({"key": key, "title": types[key][0],
                     "deadline_working_days": types[key][1], **_deadline_counts(items)})
    every = [i for items in groups.values() for i in items]
    totals = _deadline_counts(every)
    return ReportTable(
        name="funder", title="Decision times per call type against their deadline",
        columns=(Column("key", "Call type", numeric=False),
                 Column("title", "Name", numeric=False),
                 Column("deadline_working_days", "Deadline (work days)", digits=0),
                 Column("decided", "Decided", digits=0),
                 Column("median_working_days", "Median (work days)", digits=1),
                 Column("p90_working_days", "p90 (work days)", digits=1),
                 Column("on_time", "On time", digits=0),
                 Column("late", "Late", digits=0),
                 Column("no_deadline", "No deadline recorded", digits=0),
                 Column("on_time_share", "Share on time", digits=3)),
        rows=rows, start=start, end=end, grouping="deadlines",
        totals=totals,
        assumptions=("Proposals decided (accepted or rejected) in the range, by the call "
                     "type of their call. Working days from the day of submission to the "
                     "day of decision (UTC days; Saturdays, Sundays and the centre's "
                     "holidays, RECHENWERK_HOLIDAYS, skipped; the submission day does not "
                     "count).",
                     "On time: decided on or before the proposal's due date (due_on, set "
                     "on submission from the type's deadline, after the next cut-off for "
                     "types with cut-offs); late: after it. Proposals submitted before call "
                     "types have no due date: 'no deadline recorded', not in the share. "
                     "Share on time = on time / (on time + late)."))


def _deadline_counts(items: list[tuple[int, bool | None]]) -> dict[str, Any]:
    days = [float(d) for d, _ in items]
    on_time = sum(1 for _, ok in items if ok is True)
    late = sum(1 for _, ok in items if ok is False)
    return {"decided": len(items), "median_working_days": percentile(days, 50),
            "p90_working_days": percentile(days, 90), "on_time": on_time, "late": late,
            "no_deadline": sum(1 for _, ok in items if ok is None),
            "on_time_share": on_time / (on_time + late) if on_time + late else None}


def quarters(start: datetime, end: datetime) -> list[tuple[str, datetime, datetime]]:
    """The calendar quarters (UTC) [start, end) touches, each as (``2026-Q1``, its start,
    its end), clipped to the range."""
    out: list[tuple[str, datetime, datetime]] = []
    year, q = start.year, (start.month - 1) // 3
    while True:
        q_start = datetime(year, 3 * q + 1, 1, tzinfo=UTC)
        q_end = (datetime(year + 1, 1, 1, tzinfo=UTC) if q == 3
                 else datetime(year, 3 * q + 4, 1, tzinfo=UTC))
        if q_start >= end:
            return out
        out.append((f"{year}-Q{q + 1}", max(q_start, start), min(q_end, end)))
        year, q = (year + 1, 0) if q == 3 else (year, q + 1)


def capacity_per_quarter(session: Session, start: datetime, end: datetime,
                         total_gpus: int | None, guard: Guard = NO_GUARD) -> ReportTable:
    """Per calendar quarter of [start, end): capacity (``total_gpus`` x hours of the
    quarter inside the range; None when the inventory is unknown), awarded GPU-hours (award
    periods overlapping it, pro rata) and used GPU-hours (runs ending in it), and both
    over the capacity. One query for every quarter's awards, one for the usage."""
    periods = quarters(start, end)
    ap, ur = AwardPeriod, UsageRecord
    dialect = dialect_of(session)
    guard.check()
    awarded = session.execute(
        select(*(_award_hours(lo, hi, dialect) for _, lo, hi in periods))
        .select_from(ap).where(ap.starts_at < end, ap.ends_at > start)).one()
    month = bucket_start(ur.ended_at, "month", dialect)
    used: dict[str, float] = {}
    guard.check()
    for m, hours in guard.every(session.execute(
            select(month, func.coalesce(func.sum(ur.gpu_hours), 0.0))
            .where(ur.ended_at >= start, ur.ended_at < end).group_by(month))):
        first = bucket_value(m)
        label = f"{first.year}-Q{(first.month - 1) // 3 + 1}"
        used[label] = used.get(label, 0.0) + float(hours or 0.0)
    rows: list[dict[str, Any]] = []
    for (label, lo, hi), a in zip(periods, awarded, strict=True):
        cap = (total_gpus * (hi - lo).total_seconds() / 3600.0
               if total_gpus is not None else None)
        a_h, u_h = float(a or 0.0), used.get(label, 0.0)
        rows.append({"period": label, "from": lo.date().isoformat(),
                     "to": hi.date().isoformat(), "capacity_gpu_hours": cap,
                     "awarded_gpu_hours": a_h, "used_gpu_hours": u_h,
                     "awarded_capacity_share": a_h / cap if cap else None,
                     "used_capacity_share": u_h / cap if cap else None})
    cap_total = (sum(r["capacity_gpu_hours"] for r in rows)
                 if total_gpus is not None else None)
    a_total = sum(r["awarded_gpu_hours"] for r in rows)
    u_total = sum(r["used_gpu_hours"] for r in rows)
    gpus = (f"{total_gpus} GPUs, the backend's node inventory today, for every quarter "
            "(nodes added or removed earlier are not known; drained nodes count)"
            if total_gpus is not None else "unknown: the backend reports no nodes")
    return ReportTable(
        name="funder", title="Awarded and used GPU-hours against capacity per quarter",
        columns=(Column("period", "Quarter", numeric=False),
                 Column("from", "From (UTC)", numeric=False),
                 Column("to", "To (UTC, exclusive)", numeric=False),
                 Column("capacity_gpu_hours", "Capacity GPU-hours"),
                 Column("awarded_gpu_hours", "Awarded GPU-hours"),
                 Column("used_gpu_hours", "Used GPU-hours"),
                 Column("awarded_capacity_share", "Awarded / capacity", digits=3),
                 Column("used_capacity_share", "Used / capacity", digits=3)),
        rows=rows, start=start, end=end, grouping="capacity",
        totals={"total_gpus": total_gpus, "capacity_gpu_hours": cap_total,
                "awarded_gpu_hours": a_total, "used_gpu_hours": u_total,
                "awarded_capacity_share": a_total / cap_total if cap_total else None,
                "used_capacity_share": u_total / cap_total if cap_total else None},
        assumptions=(AWARD_NOTE,
                     f"Capacity: {gpus} x the hours of the quarter inside the range (the "
                     "whole quarter, also the part still to come)."))


def waits_by_kind(session: Session, start: datetime, end: datetime,
                  guard: Guard = NO_GUARD) -> ReportTable:
    """``waits_report(by="kind")`` over the whole centre, without its size column."""
    t = waits_report(session, scope=Scope(None), start=start, end=end, by="kind",
                     guard=guard)
    return replace(t, name="funder", grouping="waits",
                   title="Waiting time by organisation kind",
                   columns=tuple(c for c in t.columns if c.key != "size"),
                   rows=[{k: v for k, v in r.items() if k != "size"} for r in t.rows])


def energy_per_month(session: Session, start: datetime, end: datetime,
                     guard: Guard = NO_GUARD) -> ReportTable:
    """kWh and kg CO2e per month of the usage records ending in it, the measured and the
    estimated kWh apart, and the basis: 'measured', 'estimated' or 'mixed'."""
    ur = UsageRecord
    month = bucket_start(ur.ended_at, "month", dialect_of(session))
    is_measured = ur.energy_source == "measured"
    stmt = (select(month, func.coalesce(func.sum(ur.gpu_hours), 0.0),
                   func.coalesce(func.sum(ur.energy_kwh), 0.0),
                   func.coalesce(func.sum(ur.co2_kg), 0.0),
                   func.coalesce(func.sum(case((ur.energy_kwh.is_(None), ur.gpu_hours),
                                               else_=0.0)), 0.0),
                   func.coalesce(func.sum(case((is_measured, ur.energy_kwh),
                                               else_=0.0)), 0.0))
            .where(ur.ended_at >= start, ur.ended_at < end).group_by(month))
    guard.check()
    rows: list[dict[str, Any]] = []
    for m, h, e, c, n, meas in guard.every(session.execute(stmt)):
        measured, estimated = float(meas), float(e) - float(meas)
        rows.append({"month": f"{bucket_value(m):%Y-%m}", "gpu_hours": float(h),
                     "energy_kwh": float(e), "measured_kwh": measured,
                     "estimated_kwh": estimated, "co2_kg": float(c),
                     "basis": energy_basis(measured, estimated),
                     "gpu_hours_without_energy": float(n)})
    rows.sort(key=lambda r: r["month"])
    measured = sum(r["measured_kwh"] for r in rows)
    estimated = sum(r["estimated_kwh"] for r in rows)
    return ReportTable(
        name="funder", title="Energy per month (measured and estimated)",
        columns=(Column("month", "Month (UTC)", numeric=False),
                 Column("gpu_hours", "GPU-hours"),
                 Column("energy_kwh", "Energy (kWh)"),
                 Column("measured_kwh", "Measured (kWh)"),
                 Column("estimated_kwh", "Estimated (kWh)"),
                 Column("co2_kg", "kg CO2e"),
                 Column("basis", "Basis (measured/estimated/mixed)", numeric=False),
                 Column("gpu_hours_without_energy", "GPU-hours without a figure")),
        rows=rows, start=start, end=end, grouping="energy",
        totals={"energy_kwh": sum(r["energy_kwh"] for r in rows), "measured_kwh": measured,
                "estimated_kwh": estimated, "co2_kg": sum(r["co2_kg"] for r in rows),
                "basis": energy_basis(measured, estimated)},
        assumptions=(ENERGY_NOTE, "Runs on GPU types outside the hardware catalogue have no "
                     "estimate and no measurement; their GPU-hours are counted apart."))


def funder_report(session: Session, *, start: datetime, end: datetime,
                  guard: Guard = NO_GUARD,
                  holidays: Collection[date] = frozenset(),
                  total_gpus: int | None = None) -> FunderReport:
    """Every section for [start, end) over the whole centre (operators only: the caller
    checks); ``holidays``: the centre's calendar for working days; ``total_gpus``: the
    GPUs of the node inventory (None: capacity unknown)."""
    from rechenwerk.reports import fair_access

    field_major, field_detail = by_field(session, start, end, guard)
    waits = waits_by_kind(session, start, end, guard)
    periods = fair_access.fair_access_periods(session, start, end, guard)
    tables = {
        "country": by_country(session, start, end, guard),
        "field": field_major, "field-detail": field_detail,
        "kind": by_kind(session, start, end, guard),
        "mode": by_mode(session, start, end, guard),
        "people": people_by_kind(session, start, end, guard),
        "decisions": decision_times(session, start, end, guard),
        "deadlines": deadline_times(session, start, end, holidays, guard),
        "capacity": capacity_per_quarter(session, start, end, total_gpus, guard),
        "waits": waits,
        "fair-access": periods,
        "fair-access-kind": fair_access.fair_access_by_kind(periods, waits),
        "energy": energy_per_month(session, start, end, guard),
    }
    return FunderReport(start=start, end=end, sections=tuple(tables[n] for n in SECTIONS))
