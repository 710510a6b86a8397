"""The yearly report in the portal (operators): ``/reports/yearly?year=2026`` (an HTML
page, printable: the portal's navigation is not printed) and ``/reports/yearly.pdf``
(``web/yearly_document.py``). Computed and rendered in a worker thread under the report
guard, like the other report pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from rechenwerk.access.models import User
from rechenwerk.api.deps import get_now, get_session, inventory_gpus, settings_of
from rechenwerk.reports import yearly
from rechenwerk.reports.guard import Guard
from rechenwerk.web.deps import operator_user
from rechenwerk.web.pages.reports import _guarded
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute
from rechenwerk.web.yearly_document import document_pdf, html_context

router = APIRouter(route_class=PortalRoute, include_in_schema=False)


def _yearly(request: Request, db: Session, now: datetime, year: str,
            guard: Guard) -> yearly.YearlyReport:
    y = yearly.parse_year(year) if year else now.year
    return yearly.yearly_report(db, y, holidays=settings_of(request).holiday_dates,
                                total_gpus=inventory_gpus(request), guard=guard)


@router.get("/reports/yearly")
async def yearly_page(
    request: Request, year: str = "", user: User = Depends(operator_user),
    db: Session = Depends(get_session), now: Any = Depends(get_now),
) -> Response:
    if year:  # a bad year is a 422 before any work
        yearly.parse_year(year)

    def page(guard: Guard) -> Response:
        rep = _yearly(request, db, now, year, guard)
        return render(request, "reports/yearly.html", {
            "title": f"Yearly report {rep.year}", "section": "reports",
            **html_context(rep, now)})

    return await _guarded(request, db, "yearly report page", page)


@router.get("/reports/yearly.pdf")
async def yearly_pdf(
    request: Request, year: str = "", user: User = Depends(operator_user),
    db: Session = Depends(get_session), now: Any = Depends(get_now),
) -> Response:
    if year:
        yearly.parse_year(year)

    def pdf(guard: Guard) -> Response:
        rep = _yearly(request, db, now, year, guard)
        return Response(document_pdf(rep, now), media_type="application/pdf", headers={
            "Content-Disposition":
                f'attachment; filename="rechenwerk-yearly-report-{rep.year}.pdf"'})

    return await _guarded(request, db, "yearly report PDF", pdf)
