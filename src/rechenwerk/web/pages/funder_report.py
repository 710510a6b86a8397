"""The funder report in the portal (operators): every section of ``reports/funder.py`` as
a table with its CSV download, for a chosen range (default: the current calendar year up
to today). Computed in a worker thread under the report guard, like the reports page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from rechenwerk.access.models import User
from rechenwerk.api.deps import get_now, get_session, inventory_gpus, settings_of
from rechenwerk.errors import NotFound
from rechenwerk.reports import funder
from rechenwerk.reports import tables as report_tables
from rechenwerk.reports.guard import Guard
from rechenwerk.reports.tables import ReportTable
from rechenwerk.web.charts import Chart, Series, chart_svg
from rechenwerk.web.deps import operator_user
from rechenwerk.web.pages.reports import _guarded, parse_day
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

CHARTS = ("country", "field", "kind", "mode", "capacity", "energy")
TOP_N = 15


def funder_chart(table: ReportTable) -> Chart:
    """Awarded next to used GPU-hours per group, capacity, awarded and used per quarter,
    or measured and estimated kWh per month (the data of each chart is exactly its
    section's CSV)."""
    name = table.grouping
    if name == "energy":
        months = [str(r["month"]) for r in table.rows]
        return Chart("funder-energy", table.title, "", "kWh", (
            Series("measured", months, [r["measured_kwh"] for r in table.rows], "bar"),
            Series("estimated", months, [r["estimated_kwh"] for r in table.rows], "bar"),
        ), kind="category", note="measured: metered IT energy x PUE; estimated: from TDP x PUE")
    if name == "capacity":
        quarters = [str(r["period"]) for r in table.rows]
        return Chart("funder-capacity", table.title, "", "GPU-hours", (
            Series("capacity", quarters,
                   [r["capacity_gpu_hours"] or 0.0 for r in table.rows], "bar"),
            Series("awarded", quarters, [r["awarded_gpu_hours"] for r in table.rows], "bar"),
            Series("used", quarters, [r["used_gpu_hours"] for r in table.rows], "bar"),
        ), kind="category")
    rows = table.rows[:TOP_N]
    labels = [str(r["label"] if "label" in r and name == "field" else r["key"])
              for r in rows]
    suffix = f" (top {TOP_N})" if len(table.rows) > TOP_N else ""
    return Chart(f"funder-{name}", table.title + suffix, "", "GPU-hours", (
        Series("awarded", labels, [r["awarded_gpu_hours"] for r in rows], "bar"),
        Series("used", labels, [r["used_gpu_hours"] for r in rows], "bar"),
    ), kind="category", horizontal=True)


def funder_range(start: str, end: str, now: datetime) -> tuple[datetime, datetime]:
    """[from, to + 1 day) of the form's days (``to`` is inclusive); by default the year
    of ``now`` from January 1 up to ``now``."""
    end_dt = parse_day(end, "to")
    if end_dt is not None and len(end) == 10 and end_dt < report_tables.LATEST:
        end_dt += timedelta(days=1)
    start_dt = parse_day(start, "from")
    if start_dt is None and end_dt is None:
        start_dt = datetime(now.year, 1, 1, tzinfo=UTC)
        if start_dt >= now:  # at the very start of a year: the year before
            start_dt = datetime(now.year - 1, 1, 1, tzinfo=UTC)
    return report_tables.resolve_range(start_dt, end_dt, now=now)


def _report(request: Request, db: Session, now: datetime, start: str, end: str,
            guard: Guard) -> funder.FunderReport:
    lo, hi = funder_range(start, end, now)
    return funder.funder_report(db, start=lo, end=hi, guard=guard,
                                holidays=settings_of(request).holiday_dates,
                                total_gpus=inventory_gpus(request))


@router.get("/reports/funder")
async def funder_page(
    request: Request, start: str = "", end: str = "", user: User = Depends(operator_user),
    db: Session = Depends(get_session), now: Any = Depends(get_now),
) -> Response:
    q = request.query_params

    def page(guard: Guard) -> Response:
        rep = _report(request, db, now, q.get("from", start), q.get("to", end), guard)
        query = urlencode({"from": rep.start.isoformat(), "to": rep.end.isoformat()})
        shown_end = (rep.end - timedelta(days=1)
                     if rep.end.time() == datetime.min.time() and rep.end > rep.start
                     else rep.end)
        return render(request, "reports/funder.html", {
            "title": "Funder report", "section": "reports", "report": rep,
            "start": rep.start, "end": shown_end, "query": query,
            "notes": (funder.AWARD_NOTE, funder.ENERGY_NOTE),
            "charts": {name: {"key": f"funder-{name}", "title": rep.section(name).title,
                              "svg": None,
                              "lazy_url": f"/reports/funder/chart/{name}.svg?{query}",
                              "svg_url": f"/reports/funder/chart/{name}.svg?{query}",
                              "csv_url": f"/reports/funder/{name}.csv?{query}", "note": ""}
                       for name in CHARTS if rep.section(name).rows},
        })

    return await _guarded(request, db, "funder report page", page)


@router.get("/reports/funder/{name}.csv")
async def funder_csv(
    request: Request, name: str, user: User = Depends(operator_user),
    db: Session = Depends(get_session), now: Any = Depends(get_now),
) -> Response:
    """One section as CSV, or every section (``all.csv``) each after a ``# title`` line."""
    q = request.query_params
    if name != "all":
        report_tables.check_choice(name, funder.SECTIONS, "section")

    def csv(guard: Guard) -> Response:
        rep = _report(request, db, now, q.get("from", ""), q.get("to", ""), guard)
        filename = f"rechenwerk-funder-{name}-{rep.start:%Y%m%d}-{rep.end:%Y%m%d}.csv"
        return Response(rep.to_csv(None if name == "all" else name), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    return await _guarded(request, db, "funder report CSV", csv)


@router.get("/reports/funder/chart/{name}.svg")
async def funder_chart_svg(
    request: Request, name: str, user: User = Depends(operator_user),
    db: Session = Depends(get_session), now: Any = Depends(get_now),
) -> Response:
    if name not in CHARTS:
        raise NotFound(f"chart {name!r} not found", hint=f"Charts: {', '.join(CHARTS)}.")
    q = request.query_params

    def chart(guard: Guard) -> Response:
        rep = _report(request, db, now, q.get("from", ""), q.get("to", ""), guard)
        return Response(chart_svg(funder_chart(rep.section(name))),
                        media_type="image/svg+xml",
                        headers={"Cache-Control": "private, max-age=60"})

    return await _guarded(request, db, "funder report chart", chart)
