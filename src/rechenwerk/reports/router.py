"""REST API for reports: ``/api/v1/reports/{usage,utilisation,waits,energy,support,gpu-use}``
as JSON, or CSV with ``?format=csv``. Operators see the whole centre, others their own projects.
``/api/v1/reports/funder`` (``reports/funder.py``) is for operators only (403 otherwise);
so is ``/api/v1/reports/yearly``, served by ``web/yearly_api.py`` (it renders documents).

The routes are async: each report is computed in a worker thread under a guard that
stops it when the client disconnects or after ``RECHENWERK_REPORT_TIMEOUT_S``
(``reports/guard.py``); the answer is encoded in that thread too, off the event loop."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from rechenwerk.access.models import User
from rechenwerk.access.security import require_operator
from rechenwerk.api.deps import (
    CurrentUser,
    DbSession,
    Now,
    centre_gpus,
    inventory_gpus,
    settings_of,
)
from rechenwerk.reports import funder as report_funder
from rechenwerk.reports import gpu_use as report_gpu_use
from rechenwerk.reports import service as reports
from rechenwerk.reports import tables as report_tables
from rechenwerk.reports import utilisation as report_utilisation
from rechenwerk.reports.guard import Guard, run_report
from rechenwerk.reports.tables import ReportTable, Scope

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

Format = Literal["json", "csv"]


def _out(table: ReportTable, fmt: Format) -> Response:
    if fmt == "csv":
        return Response(table.to_csv(), media_type="text/csv")
    return JSONResponse(table.to_dict())


def _range(start: datetime | None, end: datetime | None, now: datetime
           ) -> tuple[datetime, datetime]:
    # resolve_range treats naive values as UTC and refuses dates outside its bounds.
    return report_tables.resolve_range(start, end, now=now)


async def _report(request: Request, session: Session, user: User, name: str, fmt: Format,
                  make: Callable[[Scope, Guard], ReportTable]) -> Response:
    """``make(scope, guard)`` under the guard, in a worker thread, as ``fmt``."""
    return await run_report(
        request, session, f"{name} report",
        lambda guard: _out(make(report_tables.scope_for(session, user), guard), fmt),
        timeout_s=settings_of(request).report_timeout_s)


@router.get("/usage")
async def usage(
    request: Request, session: DbSession, user: CurrentUser, now: Now,
    by: str = Query("project", description="project, org, kind, call, mode, gpu-type, "
                                           "period, job-kind or cluster"),
    period: str = Query("month", description="bucket for by=period: day, week or month"),
    start: datetime | None = Query(None, alias="from"),
    end: datetime | None = Query(None, alias="to"),
    format: Format = "json",
) -> Any:
    lo, hi = _range(start, end, now)
    return await _report(request, session, user, "usage", format, lambda scope, guard:
                         reports.usage_report(session, scope=scope, by=by, start=lo, end=hi,
                                              bucket=period, guard=guard))


@router.get("/utilisation")
async def utilisation(
    request: Request, session: DbSession, user: CurrentUser, now: Now,
    period: str = Query("day", description="day, week or month"),
    total_gpus: int | None = Query(None, ge=1, description="default: the backend's GPUs"),
    start: datetime | None = Query(None, alias="from"),
    end: datetime | None = Query(None, alias="to"),
    format: Format = "json",
) -> Any:
    lo, hi = _range(start, end, now)
    return await _report(request, session, user, "utilisation", format, lambda scope, guard:
                         report_utilisation.utilisation_report(
                             session, scope=scope, start=lo, end=hi,
                             total_gpus=total_gpus or centre_gpus(request), now=now,
                             bucket=period, guard=guard))


@router.get("/waits")
async def waits(
    request: Request, session: DbSession, user: CurrentUser, now: Now,
    by: str = Query("qos-size", description="qos, size, qos-size, kind (the organisation "
                    "kind of the job's project) or kind-size"),
    start: datetime | None = Query(None, alias="from"),
    end: datetime | None = Query(None, alias="to"),
    format: Format = "json",
) -> Any:
    lo, hi = _range(start, end, now)
    return await _report(request, session, user, "waits", format, lambda scope, guard:
                         reports.waits_report(session, scope=scope, by=by, start=lo, end=hi,
                                              guard=guard))


@router.get("/energy")
async def energy(
    request: Request, session: DbSession, user: CurrentUser, now: Now,
    country: str | None = Query(None, description="grid of this country (ISO code)"),
    pue: float | None = Query(None, description="power usage effectiveness, e.g. 1.2"),
    start: datetime | None = Query(None, alias="from"),
    end: datetime | None = Query(None, alias="to"),
    format: Format = "json",
) -> Any:
    lo, hi = _range(start, end, now)
    return await _report(request, session, user, "energy", format, lambda scope, guard:
                         reports.energy_report(session, scope=scope, start=lo, end=hi,
                                               country=country, pue=pue, guard=guard))


@router.get("/support")
async def support(
    request: Request, session: DbSession, user: CurrentUser, now: Now,
    by: str = Query("kind", description="kind, state or project"),
    start: datetime | None = Query(None, alias="from"),
    end: datetime | None = Query(None, alias="to"),
    format: Format = "json",
) -> Any:
    """Support requests opened in the range: counts and response times (median, p90)."""
    from rechenwerk.support.report import support_report

    lo, hi = _range(start, end, now)
    return await _report(request, session, user, "support", format, lambda scope, guard:
                         support_report(session, user, start=lo, end=hi, by=by,
                                        guard=guard))


@router.get("/gpu-use")
async def gpu_use(
    request: Request, session: DbSession, user: CurrentUser, now: Now,
    by: str = Query("project", description="project or user"),
    start: datetime | None = Query(None, alias="from"),
    end: datetime | None = Query(None, alias="to"),
    format: Format = "json",
) -> Any:
    """Idle GPU-hours and mean GPU utilisation per project or user (docs/jobs.md "GPU
    use"); runs nobody measured are counted apart."""
    lo, hi = _range(start, end, now)
    return await _report(request, session, user, "gpu-use", format, lambda scope, guard:
                         report_gpu_use.gpu_use_report(session, scope=scope, by=by, start=lo,
                                                       end=hi, guard=guard))


@router.get("/funder")
async def funder(
    request: Request, session: DbSession, user: CurrentUser, now: Now,
    start: datetime | None = Query(None, alias="from"),
    end: datetime | None = Query(None, alias="to"),
    section: str | None = Query(None, description="CSV of one section: "
                                + ", ".join(report_funder.SECTIONS)),
    format: Format = "json",
) -> Any:
    """The funder report (operators): awarded and used GPU-hours by country, field of
    science, organisation kind (SME + startup share) and access mode; projects and users
    per kind; decision times; waits by kind; fair access (the share of each award
    period's GPU-hours its project received when it had demand, per kind with waits);
    measured and estimated energy per month (docs/portal.md, "Funder report")."""
    require_operator(user)
    lo, hi = _range(start, end, now)
    if section is not None:
        report_tables.check_choice(section, report_funder.SECTIONS, "section")

    def make(guard: Guard) -> Response:
        rep = report_funder.funder_report(
            session, start=lo, end=hi, guard=guard,
            holidays=settings_of(request).holiday_dates,
            total_gpus=inventory_gpus(request))
        if format == "csv":
            return Response(rep.to_csv(section), media_type="text/csv")
        if section is not None:
            return JSONResponse(rep.section(section).to_dict())
        return JSONResponse(rep.to_dict())

    return await run_report(request, session, "funder report", make,
                            timeout_s=settings_of(request).report_timeout_s)
