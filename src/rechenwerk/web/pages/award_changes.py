"""Award change pages: a PI asks for an extension, a supplement or an early end of an
award (and sees its requests and versions); operators see the open requests and approve
(possibly granting less) or reject each with a note. The rules are the service's
(``access.award_changes``); mistakes come back beside their fields with the input kept."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from rechenwerk.access.award_changes import (
    award_versions,
    decide_change,
    list_changes,
    request_change,
    visible_change,
    withdraw_change,
)
from rechenwerk.access.awards import visible_award
from rechenwerk.access.models import Award, ProjectRole, User
from rechenwerk.access.projects import membership
from rechenwerk.access.report_tasks import list_tasks
from rechenwerk.api.deps import get_now, get_session, rollback_request, settings_of
from rechenwerk.errors import RechenwerkError
from rechenwerk.web.deps import form_data, portal_user
from rechenwerk.web.forms import FormErrors, errors_from, moment, number, text
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute
from rechenwerk.web.session import flash_redirect

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

KIND_OPTIONS = [("extension", "Extension: a later end, the same GPU-hours"),
                ("supplement", "Supplement: more GPU-hours, the same end"),
                ("early_end", "Early end: end before the award's end")]
REQUEST_FIELDS = {"kind", "reason", "until", "gpu_hours"}
DECISION_FIELDS = {"decision", "note", "until", "gpu_hours"}


def _is_pi(db: Session, user: User, award: Award) -> bool:
    if user.is_operator:
        return True
    m = membership(db, user, award.project)
    return m is not None and m.role == ProjectRole.PI.value


def award_page_response(
    request: Request, db: Session, user: User, award: Award, now: datetime, *,
    form: dict[str, str] | None = None, errors: FormErrors | None = None,
    report_form: tuple[int, dict[str, str], FormErrors] | None = None,
    status_code: int = 200,
) -> Response:
    """The award's page: change requests, reports, history; ``form``/``errors`` refill
    the change form, ``report_form`` (task id, fields, errors) one report's form."""
    is_pi = _is_pi(db, user, award)
    return render(request, "awards/change.html", {
        "title": f"Award {award.id}", "section": "projects", "award": award,
        "may_request": is_pi and award.expires_at > now, "is_pi": is_pi,
        "changes": list_changes(db, user, award_id=award.id, limit=200).items,
        "versions": award_versions(db, award), "kind_options": KIND_OPTIONS,
        "form": form or {"kind": "extension"}, "errors": errors or FormErrors(),
        "tasks": list_tasks(db, user, award_id=award.id, limit=200).items,
        "today": now.date(), "report_form": report_form,
        "acknowledgement": settings_of(request).award_acknowledgement.format(
            award=award.id, project=award.project.slug),
    }, status_code=status_code)


@router.get("/awards/{award_id}")
def award_page(request: Request, award_id: int, user: User = Depends(portal_user),
               db: Session = Depends(get_session), now: Any = Depends(get_now)) -> Response:
    return award_page_response(request, db, user, visible_award(db, user, award_id), now)


@router.post("/awards/{award_id}/changes")
def award_change_request(request: Request, award_id: int,
                         form: dict[str, str] = Depends(form_data),
                         user: User = Depends(portal_user),
                         db: Session = Depends(get_session),
                         now: Any = Depends(get_now)) -> Response:
    award = visible_award(db, user, award_id)
    errors = FormErrors()
    kind = text(form, "kind")
    until = moment(form, "until", errors, label="New end", required=False)
    hours = number(form, "gpu_hours", errors, label="Extra GPU-hours", required=False)
    if not errors:
        try:
            request_change(db, user, award, kind=kind, reason=text(form, "reason"),
                           until=until, extra_gpu_hours=hours, now=now)
        except RechenwerkError as exc:
            rollback_request(request)
            award = visible_award(db, user, award_id)
            return award_page_response(request, db, user, award, now, form=form,
                                       errors=errors_from(exc, fields=REQUEST_FIELDS),
                                       status_code=exc.http_status)
    if errors:
        return award_page_response(request, db, user, award, now, form=form, errors=errors,
                                   status_code=422)
    return flash_redirect(request, f"/awards/{award_id}",
                          "Request sent; an operator decides it (you will see the decision here).")


@router.post("/award-changes/{change_id}/withdraw")
def award_change_withdraw(request: Request, change_id: int,
                          user: User = Depends(portal_user),
                          db: Session = Depends(get_session),
                          now: Any = Depends(get_now)) -> Response:
    change = visible_change(db, user, change_id)
    withdraw_change(db, user, change, now=now)
    return flash_redirect(request, f"/awards/{change.award_id}",
                          f"Request {change_id} withdrawn.")


def _queue_page(request: Request, db: Session, user: User, state: str,
                forms: dict[int, tuple[dict[str, str], FormErrors]],
                status_code: int = 200) -> Response:
    changes = list_changes(db, user, state=state or None, limit=200).items
    return render(request, "awards/changes.html", {
        "title": "Award change requests", "section": "projects", "changes": changes,
        "state": state, "forms": forms,
    }, status_code=status_code)


@router.get("/award-changes")
def award_changes_page(request: Request, state: str = "requested",
                       user: User = Depends(portal_user),
                       db: Session = Depends(get_session)) -> Response:
    return _queue_page(request, db, user, state, {})


@router.post("/award-changes/{change_id}/decision")
def award_change_decide(request: Request, change_id: int,
                        form: dict[str, str] = Depends(form_data),
                        user: User = Depends(portal_user),
                        db: Session = Depends(get_session),
                        now: Any = Depends(get_now)) -> Response:
    change = visible_change(db, user, change_id)
    errors = FormErrors()
    until = moment(form, "until", errors, label="Granted end", required=False)
    hours = number(form, "gpu_hours", errors, label="Granted GPU-hours", required=False)
    if not errors:
        try:
            decide_change(db, user, change, decision=text(form, "decision"),
                          note=text(form, "note"), until=until, gpu_hours=hours,
                          final_report_months=settings_of(request).final_report_months,
                          now=now)
        except RechenwerkError as exc:
            rollback_request(request)
            errors = errors_from(exc, fields=DECISION_FIELDS)
    if errors:
        return _queue_page(request, db, user, "requested", {change_id: (form, errors)}, 422)
    return flash_redirect(
        request, "/award-changes",
        f"Request {change_id} {change.state}; the PI sees the note on the award page.")
