"""``GET /api/v1/reports/yearly`` (operators): the yearly report (``reports/yearly.py``) as
JSON, a standalone HTML document or a PDF, for ``rechenwerk report yearly``. A REST route
that lives with the portal's face because it renders documents (``web/yearly_document.py``);
a domain's router may not import the portal (docs/architecture.md)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from rechenwerk.access.security import require_operator
from rechenwerk.api.deps import CurrentUser, DbSession, Now, inventory_gpus, settings_of
from rechenwerk.reports import yearly as report_yearly
from rechenwerk.reports.guard import Guard, run_report
from rechenwerk.web import yearly_document

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])


@router.get("/yearly")
async def yearly(
    request: Request, session: DbSession, user: CurrentUser, now: Now,
    year: str = Query("", description="calendar year, e.g. 2026 (default: this year)"),
    format: Literal["json", "html", "pdf"] = "json",
) -> Any:
    """The yearly report (operators): every funder-report figure for one calendar year,
    each labelled measured or estimated with its source; as JSON, a standalone HTML
    document or a PDF (docs/portal.md, "Yearly report")."""
    require_operator(user)
    y = report_yearly.parse_year(year) if year else now.year

    def make(guard: Guard) -> Response:
        rep = report_yearly.yearly_report(
            session, y, holidays=settings_of(request).holiday_dates,
            total_gpus=inventory_gpus(request), guard=guard)
        if format == "pdf":
            return Response(yearly_document.document_pdf(rep, now),
                            media_type="application/pdf")
        if format == "html":
            return Response(yearly_document.document_html(rep, now),
                            media_type="text/html; charset=utf-8")
        return JSONResponse(rep.to_dict())

    return await run_report(request, session, "yearly report", make,
                            timeout_s=settings_of(request).report_timeout_s)
