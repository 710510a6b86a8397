"""The yearly report: every section of the funder report (``reports/funder.py``) for one
calendar year (UTC), each figure labelled *measured* or *estimated* and given its source
in one line. Rendered as an HTML page and a PDF by ``web/yearly_document.py``; the
portal (``/reports/yearly``), the API (``/api/v1/reports/yearly``) and ``rechenwerk
report yearly`` serve it, for operators only.

*Measured* here means counted from the centre's own records (usage records of settled
runs, award periods, proposals, jobs, memberships); *estimated* means derived from a
model: capacity (today's node inventory taken for the whole year) and energy and CO2 where
no meter reading exists (the TDP estimate made when a run is charged); energy is
*measured* where the runs' IT energy was metered (Slurm's ConsumedEnergy, the local
executor's counters), *mixed* when some was; both are x the period's PUE."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.orm import Session

from rechenwerk.errors import InvalidInput
from rechenwerk.reports import funder
from rechenwerk.reports.guard import NO_GUARD, Guard
from rechenwerk.reports.tables import EARLIEST, LATEST, ReportTable

MEASURED = "measured"
ESTIMATED = "estimated"
FIRST_YEAR = EARLIEST.year
LAST_YEAR = LATEST.year - 1

_HOURS_SOURCE = ("awarded: award periods overlapping the year, pro rata to their time in "
                 "it; used: usage records (settled runs) ending in it")
# section -> (basis, the source of its figures in one line); docs/portal.md "Yearly report"
FIGURES: dict[str, tuple[str, str]] = {
    "country": (MEASURED, f"Organisation country (ISO 3166-1) of each project; {_HOURS_SOURCE}."),
    "field": (MEASURED, "Project field of science, OECD FORD major field (Frascati Manual "
              f"2015); {_HOURS_SOURCE}."),
    "field-detail": (MEASURED, "Project field of science as given (OECD FORD code); "
                     f"{_HOURS_SOURCE}."),
    "kind": (MEASURED, "Organisation kind of each project, SME + startup share of the "
             f"GPU-hours; {_HOURS_SOURCE}."),
    "mode": (MEASURED, "Access mode of the call of each award's proposal (award -> proposal "
             f"-> call); {_HOURS_SOURCE}."),
    "people": (MEASURED, "Projects with an award period or usage in the year; today's members "
               "of them; submitters of jobs with runs ending in the year."),
    "decisions": (MEASURED, "Proposals decided in the year: submitted_at to decided_at, "
                  "calendar days."),
    "deadlines": (MEASURED, "Proposals decided in the year by call type: working days from "
                  "submission to decision (weekends and RECHENWERK_HOLIDAYS skipped), decided "
                  "by proposals.due_on or late."),
    "capacity": (ESTIMATED, "Capacity: GPUs of today's node inventory x hours of each quarter "
                 "(no inventory history); awarded and used GPU-hours as above, measured."),
    "waits": (MEASURED, "Jobs that started in the year: start minus submit, per organisation "
              "kind of the job's project."),
    "fair-access": (MEASURED, "Award periods overlapping the year whose project had demand "
                    "(a job submitted in the period or still waiting at its start): the "
                    "period's GPU-hours and the usage records charged to it."),
    "fair-access-kind": (MEASURED, "The fair-access periods summed per organisation kind; "
                         "waits as in the waits section (jobs that started in the year)."),
    "energy": (ESTIMATED, "usage_records.energy_kwh / co2_kg, set when a run is charged: "
               "measured where its IT energy was metered (Slurm's ConsumedEnergy; the "
               "local executor's NVML or apportioned RAPL counters), otherwise GPU-hours x "
               "TDP-based power (hardware catalogue); both x the period's PUE; measured "
               "and estimated kWh per month apart."),
}


def _basis(t: ReportTable) -> str:
    """A section's basis; energy's from its figures: measured, estimated or mixed."""
    if t.grouping == "energy":
        return str(t.totals.get("basis") or ESTIMATED)
    return FIGURES[t.grouping][0]


def parse_year(value: str | int) -> int:
    """A calendar year the reports cover, else InvalidInput naming ``year``."""
    text = str(value).strip()
    if not text.isdigit() or not FIRST_YEAR <= int(text) <= LAST_YEAR:
        raise InvalidInput(f"year must be a calendar year like 2026, got {text!r}",
                           field="year",
                           hint=f"Give a year from {FIRST_YEAR} to {LAST_YEAR}.")
    return int(text)


def year_range(year: int) -> tuple[datetime, datetime]:
    """[January 1, next January 1) of ``year`` in UTC."""
    y = parse_year(year)
    return datetime(y, 1, 1, tzinfo=UTC), datetime(y + 1, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Figure:
    """One section of the yearly report with its basis and source."""

    table: ReportTable
    basis: str
    source: str


@dataclass(frozen=True, slots=True)
class YearlyReport:
    year: int
    report: funder.FunderReport

    @property
    def figures(self) -> list[Figure]:
        return [Figure(t, _basis(t), FIGURES[t.grouping][1]) for t in self.report.sections]

    def to_dict(self) -> dict[str, Any]:
        data = self.report.to_dict()
        data |= {"report": "yearly", "title": f"Yearly report {self.year}", "year": self.year,
                 "figures": {f.table.grouping: {"basis": f.basis, "source": f.source}
                             for f in self.figures}}
        return data


def yearly_report(session: Session, year: int, *, holidays: Collection[date] = frozenset(),
                  total_gpus: int | None = None, guard: Guard = NO_GUARD) -> YearlyReport:
    """The funder report for calendar ``year`` (operators only: the caller checks)."""
    start, end = year_range(year)
    return YearlyReport(year=year, report=funder.funder_report(
        session, start=start, end=end, guard=guard, holidays=holidays,
        total_gpus=total_gpus))
