"""The support report: requests opened in a range, counted by kind, state or project,
with the response times operators are measured by: time to the first operator answer
and time to close (median and p90, hours). Served by ``reports/router.py``
(``/api/v1/reports/support``) and ``rechenwerk report support``.

Who sees what: the requests the user may see (``support.service.visible_requests``:
operators all; others those they opened and those of projects they are PI of), so a
report never counts a request its reader could not open.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from rechenwerk.access.models import Project, User
from rechenwerk.reports.guard import NO_GUARD, Guard
from rechenwerk.reports.tables import Column, ReportTable, check_choice
from rechenwerk.support.models import SupportRequest, SupportState
from rechenwerk.support.service import KINDS, STATES, visible_requests

GROUPINGS: tuple[str, ...] = ("kind", "state", "project")


def _hours(later: datetime | None, earlier: datetime) -> float | None:
    return None if later is None else max((later - earlier).total_seconds(), 0.0) / 3600.0


def _stats(rows: list[tuple[float | None, float | None, str]]) -> dict[str, Any]:
    answers = np.asarray([a for a, _, _ in rows if a is not None])
    closes = np.asarray([c for _, c, _ in rows if c is not None])
    out: dict[str, Any] = {
        "requests": len(rows),
        "not_closed": sum(1 for _, _, state in rows if state != SupportState.CLOSED.value),
        "answered": int(answers.size),
        "closed": int(closes.size),
        "median_first_answer_h": None,
        "p90_first_answer_h": None,
        "median_close_h": None,
        "p90_close_h": None,
    }
    if answers.size:
        out |= {
            "median_first_answer_h": float(np.percentile(answers, 50)),
            "p90_first_answer_h": float(np.percentile(answers, 90)),
        }
    if closes.size:
        out |= {
            "median_close_h": float(np.percentile(closes, 50)),
            "p90_close_h": float(np.percentile(closes, 90)),
        }
    return out


def support_report(
    session: Session,
    user: User,
    *,
    start: datetime,
    end: datetime,
    by: str = "kind",
    guard: Guard = NO_GUARD,
) -> ReportTable:
    """Requests opened in [start, end) grouped by ``by`` (kind, state or project)."""
    check_choice(by, GROUPINGS, "by")
    stmt = (
        visible_requests(session, user)
        .where(SupportRequest.created_at >= start, SupportRequest.created_at < end)
        .with_only_columns(
            SupportRequest.kind,
            SupportRequest.state,
            Project.slug,
            SupportRequest.created_at,
            SupportRequest.first_answered_at,
            SupportRequest.closed_at,
        )
        .join(Project, Project.id == SupportRequest.project_id)
    )
    groups: dict[str, list[tuple[float | None, float | None, str]]] = {}
    every: list[tuple[float | None, float | None, str]] = []
    guard.check()
    for kind, state, slug, created, answered, closed in guard.every(session.execute(stmt)):
        key = {"kind": kind, "state": state, "project": slug}[by]
        row = (
            _hours(answered, created),
            _hours(closed, created) if state == SupportState.CLOSED.value else None,
            str(state),
        )
        groups.setdefault(str(key), []).append(row)
        every.append(row)
    order = {"kind": KINDS, "state": STATES}.get(by, ())
    keys = [k for k in order if k in groups] + sorted(k for k in groups if k not in order)
    rows = [{by: k} | _stats(groups[k]) for k in keys]
    totals = _stats(every)
    return ReportTable(
        name="support",
        title=f"Support requests by {by}",
        columns=(
            Column(by, by.capitalize(), numeric=False),
            Column("requests", "Requests", digits=0),
            Column("not_closed", "Not closed", digits=0),
            Column("answered", "Answered", digits=0),
            Column("closed", "Closed", digits=0),
            Column("median_first_answer_h", "Median first answer (hours)", digits=2),
            Column("p90_first_answer_h", "p90 first answer (hours)", digits=2),
            Column("median_close_h", "Median time to close (hours)", digits=2),
            Column("p90_close_h", "p90 time to close (hours)", digits=2),
        ),
        rows=rows,
        start=start,
        end=end,
        grouping=by,
        totals=totals,
        assumptions=(
            "Requests opened in the range. First answer = the first reply of an operator "
            "who is not the requester, minus the opening; requests without one are left "
            "out of its median and p90.",
            "Time to close = the latest close minus the opening, for requests closed now "
            "(a reopened request counts once it is closed again).",
            "Operators see every request; others those they opened and those of projects "
            "they are PI of.",
        ),
    )
