"""Reports in the portal: GPU-hours by a chosen grouping, utilisation over time, waiting
times by QOS and job size, energy and CO2 per project, support requests by kind with
their response times; every chart and table is also a CSV download. Operators see the
whole centre, others their own projects (and, of support, the requests they may see).

Like the REST API's, the pages are async and compute (and render) in a worker thread
under a guard that stops when the browser goes away or after
``RECHENWERK_REPORT_TIMEOUT_S`` (``reports/guard.py``)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from rechenwerk.access.models import User
from rechenwerk.access.visibility import visible_project_ids
from rechenwerk.api.deps import centre_gpus, get_now, get_session, settings_of
from rechenwerk.errors import InvalidInput, NotFound
from rechenwerk.reports import service as reports
from rechenwerk.reports import tables as report_tables
from rechenwerk.reports import utilisation as report_utilisation
from rechenwerk.reports.guard import NO_GUARD, Guard, run_report
from rechenwerk.reports.tables import ReportTable
from rechenwerk.support.report import support_report
from rechenwerk.web.charts import Chart, Series, chart_svg
from rechenwerk.web.deps import portal_user
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

TOP_N = 15
# Rows of a report table on the page (a row per project is 1,000 rows at a large centre);
# the rest are in the table's CSV, which the page links.
TABLE_ROWS = 25
GROUP_LABELS = {"project": "project", "org": "organisation", "kind": "organisation kind",
                "call": "call", "mode": "access mode", "gpu-type": "GPU type", "period": "period",
                "job-kind": "job kind (batch or interactive)", "cluster": "cluster"}


def parse_day(value: str, name: str) -> datetime | None:
    if not value:
        return None
    try:
        d = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a date like 2026-03-01, got {value!r}", field=name,
                           hint="Dates are UTC days: YYYY-MM-DD.") from None
    if d.tzinfo is None:
        return d.replace(tzinfo=UTC)
    try:
        return d.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{name} {value!r} is outside the dates reports cover",
                           field=name, hint="Dates are UTC days: YYYY-MM-DD.") from None


class _RecentTables:
    """Report tables computed in the last ``TTL_S`` seconds, per app, scope and query.

    The reports page computes the four tables; its charts and CSV links (which carry the
    page's exact range) follow within moments and reuse them instead of querying again.
    """

    TTL_S = 10.0
    MAX = 64

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[Any, ...], tuple[float, ReportTable]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> ReportTable | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None or time.monotonic() - hit[0] > self.TTL_S:
                return None
            return hit[1]

    def put(self, key: tuple[Any, ...], table: ReportTable) -> None:
        with self._lock:
            self._items[key] = (time.monotonic(), table)
            self._items.move_to_end(key)
            while len(self._items) > self.MAX:
                self._items.popitem(last=False)


_recent = _RecentTables()


def build_reports(request: Request, db: Session, user: User, now: datetime, *,
                  start: str, end: str, by: str, period: str,
                  only: str | None = None, guard: Guard = NO_GUARD) -> dict[str, ReportTable]:
    scope = report_tables.scope_for(db, user)
    end_dt = parse_day(end, "to")
    if end_dt is not None and len(end) == 10 and end_dt < report_tables.LATEST:
        end_dt += timedelta(days=1)  # "to" a day includes that day
    lo, hi = report_tables.resolve_range(parse_day(start, "from"), end_dt, now=now)
    makers: dict[str, Any] = {
        "usage": lambda: reports.usage_report(db, scope=scope, by=by, start=lo, end=hi,
                                              bucket=period, guard=guard),
        "utilisation": lambda: report_utilisation.utilisation_report(
            db, scope=scope, start=lo, end=hi, total_gpus=centre_gpus(request), now=now,
            bucket=period if period != "month" or (hi - lo).days > 90 else "day",
            guard=guard),
        "waits": lambda: reports.waits_report(db, scope=scope, start=lo, end=hi,
                                              guard=guard),
        "energy": lambda: reports.energy_report(db, scope=scope, start=lo, end=hi,
                                                guard=guard),
        "support": lambda: support_report(db, user, start=lo, end=hi, by="kind",
                                          guard=guard),
    }
    out: dict[str, ReportTable] = {}
    for name, make in makers.items():
        if only not in (None, name):
            continue
        # The support report is seen by requester and PI, not by project: keyed per user.
        key: tuple[Any, ...] = (id(request.app), scope.project_ids, name, lo, hi, by, period,
                                user.id if name == "support" else None)
        table = _recent.get(key)
        if table is None:
            table = make()
            _recent.put(key, table)
        out[name] = table
    return out


def chart_for(name: str, table: ReportTable) -> Chart:
    """The chart of one report (its data is exactly the report's CSV)."""
    if name == "usage":
        if table.grouping.startswith("period"):
            return Chart("usage", table.title, "period start (UTC)", "GPU-hours", (
                Series("GPU-hours", [r["key"] for r in table.rows],
                       [r["gpu_hours"] for r in table.rows], "bar"),), kind="time")
        top = table.rows[:TOP_N]
        suffix = f" (top {TOP_N})" if len(table.rows) > TOP_N else ""
        return Chart("usage", table.title + suffix, "", "GPU-hours", (
            Series("GPU-hours", [str(r["key"]) for r in top], [r["gpu_hours"] for r in top],
                   "bar"),), kind="category", horizontal=True)
    if name == "utilisation":
        return Chart("utilisation", table.title, "period start (UTC)", "utilisation (%)", (
            Series("busy GPUs / all GPUs", [r["period"] for r in table.rows],
                   [100.0 * r["utilisation"] for r in table.rows], "area"),), y_max=100.0)
    if name == "waits":
        labels = [f"{r['qos']} · {r['size']}" for r in table.rows]
        return Chart("waits", table.title, "", "hours", (
            Series("median wait", labels, [r["median_wait_h"] for r in table.rows], "bar"),
            Series("p90 wait", labels, [r["p90_wait_h"] for r in table.rows], "bar"),
        ), kind="category", horizontal=True)
    rows = table.rows[:TOP_N]
    return Chart("energy", table.title, "", "t CO2e", (
        Series("t CO2e", [r["project"] for r in rows], [r["co2_t"] for r in rows], "bar"),
    ), kind="category", horizontal=True, note="assumptions below the table")


async def _guarded(request: Request, db: Session, what: str,
                   page: Callable[[Guard], Response]) -> Response:
    """``page(guard)`` (its reports and their rendering) in a worker thread, stopped when
    the browser goes away or at the time limit."""
    return await run_report(request, db, what, page,
                            timeout_s=settings_of(request).report_timeout_s)


@router.get("/reports")
async def reports_page(
    request: Request, start: str = "", end: str = "", by: str = "project",
    period: str = "week", user: User = Depends(portal_user),
    db: Session = Depends(get_session), now: Any = Depends(get_now),
) -> Response:
    return await _guarded(request, db, "reports page", lambda guard: _reports_page(
        request, db, user, now, start=start, end=end, by=by, period=period, guard=guard))


def _reports_page(request: Request, db: Session, user: User, now: datetime, *, start: str,
                  end: str, by: str, period: str, guard: Guard) -> Response:
    params = {k: v for k, v in request.query_params.items()}
    tables = build_reports(request, db, user, now, start=params.get("from", start),
                           end=params.get("to", end), by=by, period=period, guard=guard)
    # Charts and downloads get the page's exact range (and so reuse its tables).
    usage = tables["usage"]
    query = "?" + urlencode({"from": usage.start.isoformat(), "to": usage.end.isoformat(),
                             "by": by, "period": period})
    # The tables come with the page; each chart is rendered by its own request (htmx,
    # on load), so the page is quick and the four SVGs are drawn in parallel.
    ctx_charts = {name: {"key": name, "title": t.title, "svg": None,
                         "lazy_url": f"/reports/chart/{name}.svg{query}",
                         "csv_url": f"/reports/{name}.csv{query}",
                         "svg_url": f"/reports/chart/{name}.svg{query}",
                         "note": "assumptions below the table" if name == "energy" else ""}
                  for name, t in tables.items()}
    return render(request, "reports/index.html", {
        "title": "Reports", "section": "reports", "tables": tables, "charts": ctx_charts,
        "table_rows": TABLE_ROWS,
        # "to" is inclusive in the form: a range ending at midnight shows the day before
        "start": usage.start, "end": usage.end - timedelta(days=1)
        if usage.end.time() == datetime.min.time() and usage.end > usage.start
        else usage.end, "by": by, "period": period,
        "groupings": [(g, GROUP_LABELS[g]) for g in reports.GROUPINGS],
        "scoped": visible_project_ids(db, user) is not None,
    })


def _one_report(request: Request, db: Session, user: User, now: Any, name: str, *,
                by: str, period: str, guard: Guard) -> Any:
    """The table behind one chart or CSV download, for the page's exact range."""
    q = request.query_params
    return build_reports(request, db, user, now, start=q.get("from", ""),
                         end=q.get("to", ""), by=by, period=period, only=name,
                         guard=guard)[name]


CHARTS = ("usage", "utilisation", "waits", "energy")
CSVS = (*CHARTS, "support")  # the support report is a table without a chart


def _known(name: str, what: str) -> None:
    names = CHARTS if what == "chart" else CSVS
    if name not in names:
        raise NotFound(f"{what} {name!r} not found",
                       hint=f"{what.capitalize()}s: {', '.join(names)}.")


@router.get("/reports/chart/{name}.svg")
async def report_chart(
    request: Request, name: str, by: str = "project", period: str = "week",
    user: User = Depends(portal_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    _known(name, "chart")

    def chart(guard: Guard) -> Response:
        table = _one_report(request, db, user, now, name, by=by, period=period, guard=guard)
        svg = chart_svg(chart_for(name, table))
        return Response(svg, media_type="image/svg+xml",
                        headers={"Cache-Control": "private, max-age=60"})

    return await _guarded(request, db, f"{name} chart", chart)


@router.get("/reports/{name}.csv")
async def report_csv(
    request: Request, name: str, by: str = "project", period: str = "week",
    user: User = Depends(portal_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    _known(name, "report")

    def csv(guard: Guard) -> Response:
        table = _one_report(request, db, user, now, name, by=by, period=period, guard=guard)
        filename = f"rechenwerk-{name}-{table.start:%Y%m%d}-{table.end:%Y%m%d}.csv"
        return Response(table.to_csv(), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    return await _guarded(request, db, f"{name} CSV", csv)
