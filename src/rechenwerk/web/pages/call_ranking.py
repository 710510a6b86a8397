"""The ranking of a call for operators: the proposals at the ranking step, best mean
score first, against the call's budget with the recommended grant of each (in full while
it lasts, the remainder as a partial award, then none); confirming completes the step
(``access.review_pipeline``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from rechenwerk.access import review_pipeline
from rechenwerk.access.calls import get_call
from rechenwerk.access.models import User
from rechenwerk.api.deps import get_now, get_session, rollback_request, settings_of
from rechenwerk.errors import RechenwerkError
from rechenwerk.web.deps import operator_user
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute
from rechenwerk.web.session import flash_redirect

router = APIRouter(route_class=PortalRoute, include_in_schema=False)


def _deadlines(request: Request, now: Any) -> review_pipeline.Deadlines:
    return review_pipeline.Deadlines.from_settings(settings_of(request), now.date())


def _page(request: Request, db: Session, slug: str, now: Any, error: str = "",
          status_code: int = 200) -> Response:
    call = get_call(db, slug)
    rows = review_pipeline.call_ranking(db, call, _deadlines(request, now))
    return render(request, "ops/ranking.html", {
        "title": f"Ranking of {call.title}", "section": "calls", "call": call, "rows": rows,
        "error": error,
    }, status_code=status_code)


@router.get("/ops/calls/{slug}/ranking")
def ranking_page(request: Request, slug: str, user: User = Depends(operator_user),
                 db: Session = Depends(get_session), now: Any = Depends(get_now)) -> Response:
    return _page(request, db, slug, now)


@router.post("/ops/calls/{slug}/ranking")
def ranking_confirm(request: Request, slug: str, user: User = Depends(operator_user),
                    db: Session = Depends(get_session),
                    now: Any = Depends(get_now)) -> Response:
    call = get_call(db, slug)
    try:
        rows = review_pipeline.confirm_ranking(db, user, call, now=now,
                                               deadlines=_deadlines(request, now))
    except RechenwerkError as exc:
        rollback_request(request)
        return _page(request, db, slug, now, error=exc.message, status_code=exc.http_status)
    return flash_redirect(request, f"/ops/calls/{slug}/ranking",
                          f"Ranking of {len(rows)} proposal(s) confirmed; decide each with its "
                          "recommended grant.")
