"""REST API for reports: ``/api/v1/reports/{usage,utilisation,waits,energy}`` as JSON, or
CSV with ``?format=csv``. Operators see the whole centre, others their own projects."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response

from rechenwerk.api.deps import CurrentUser, DbSession, Now, centre_gpus
from rechenwerk.reports import service as reports
from rechenwerk.reports import tables as report_tables
from rechenwerk.reports import utilisation as report_utilisation
from rechenwerk.reports.tables import ReportTable

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

Format = Literal["json", "csv"]


def _out(table: ReportTable, fmt: Format) -> Any:
    if fmt == "csv":
        return Response(table.to_csv(), media_type="text/csv")
    return table.to_dict()


def _range(start: datetime | None, end: datetime | None, now: datetime
           ) -> tuple[datetime, datetime]:
    # resolve_range treats naive values as UTC and refuses dates outside its bounds.
    return report_tables.resolve_range(start, end, now=now)


@router.get("/usage")
def usage(
    session: DbSession, user: CurrentUser, now: Now,
    by: str = Query("project", description="project, org, kind, call, mode, gpu-type or period"),
    period: str = Query("month", description="bucket for by=period: day, week or month"),
    start: datetime | None = Query(None, alias="from"),
    end: datetime | None = Query(None, alias="to"),
    format: Format = "json",
) -> Any:
    lo, hi = _range(start, end, now)
    return _out(reports.usage_report(session, scope=report_tables.scope_for(session, user), by=by,
                                     start=lo, end=hi, bucket=period), format)


@router.get("/utilisation")
def utilisation(
    request: Request, session: DbSession, user: CurrentUser, now: Now,
    period: str = Query("day", description="day, week or month"),
    total_gpus: int | None = Query(None, ge=1, description="default: the backend's GPUs"),
    start: datetime | None = Query(None, alias="from"),
    end: datetime | None = Query(None, alias="to"),
    format: Format = "json",
) -> Any:
    lo, hi = _range(start, end, now)
    return _out(report_utilisation.utilisation_report(
        session, scope=report_tables.scope_for(session, user), start=lo, end=hi,
        total_gpus=total_gpus or centre_gpus(request), now=now, bucket=period), format)


@router.get("/waits")
def waits(
    session: DbSession, user: CurrentUser, now: Now,
    by: str = Query("qos-size", description="qos, size or qos-size"),
    start: datetime | None = Query(None, alias="from"),
    end: datetime | None = Query(None, alias="to"),
    format: Format = "json",
) -> Any:
    lo, hi = _range(start, end, now)
    return _out(reports.waits_report(session, scope=report_tables.scope_for(session, user), by=by,
                                     start=lo, end=hi), format)


@router.get("/energy")
def energy(
    session: DbSession, user: CurrentUser, now: Now,
    country: str | None = Query(None, description="grid of this country (ISO code)"),
    pue: float | None = Query(None, description="power usage effectiveness, e.g. 1.2"),
    start: datetime | None = Query(None, alias="from"),
    end: datetime | None = Query(None, alias="to"),
    format: Format = "json",
) -> Any:
    lo, hi = _range(start, end, now)
    return _out(reports.energy_report(session, scope=report_tables.scope_for(session, user),
                                      start=lo, end=hi, country=country, pue=pue), format)
