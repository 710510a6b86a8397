"""Operator pages: calls and awards management, the audit log. (The cluster view and the
queue live in ``cluster.py``.) Every rule is the access service's; these views only turn
forms into calls and results into pages."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from rechenwerk.access.audit import list_audit
from rechenwerk.access.awards import create_award, list_awards, new_award_problems
from rechenwerk.access.calls import (
    call_status,
    close_call,
    create_call,
    get_call,
    list_calls,
    new_call_problems,
)
from rechenwerk.access.gpu_types import known_gpu_types
from rechenwerk.access.models import AccessMode, OrgKind, User
from rechenwerk.access.projects import get_project, list_projects
from rechenwerk.access.proposals import list_proposals, visible_proposal
from rechenwerk.access.validation import ref_is_id
from rechenwerk.api.deps import get_now, get_session
from rechenwerk.errors import RechenwerkError
from rechenwerk.web.deps import form_data, operator_user
from rechenwerk.web.forms import FormErrors, checkbox, errors_from, moment, number, text
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute
from rechenwerk.web.session import flash_redirect

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

AUDIT_PAGE = 50


def _calls_page(
    request: Request, db: Session, user: User, now: Any, *,
    call_form: dict[str, str] | None = None, call_errors: FormErrors | None = None,
    award_form: dict[str, str] | None = None, award_errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    calls = list_calls(db, now=now, limit=200).items
    awards = list_awards(db, user, limit=500).items
    projects = list_projects(db, user, limit=500).items
    accepted = list_proposals(db, user, state="accepted", limit=500).items
    q = request.query_params
    # "create the award" from a decided proposal: its grant is the award's GPU-hours
    granted = next((p.granted_gpu_hours for p in accepted
                    if str(p.id) == q.get("award_proposal", "")
                    and p.granted_gpu_hours is not None), None)
    default_award = {"project": q.get("award_project", ""), "proposal": q.get("award_proposal", ""),
                     "gpu_hours": f"{granted:g}" if granted is not None else "",
                     "starts_at": f"{now:%Y-%m-%d}", "period_count": "4", "period_months": "3",
                     "carry_over_limit_gpu_hours": "0", "gpu_type": ""}
    default_call = {"access_mode": "research", "opens_at": f"{now:%Y-%m-%d}"}
    return render(request, "ops/calls.html", {
        "title": "Calls & awards", "section": "calls",
        "calls": [(c, call_status(c, now)) for c in calls],
        "awards": awards,
        "call_form": call_form or default_call, "call_errors": call_errors or FormErrors(),
        "award_form": award_form or default_award, "award_errors": award_errors or FormErrors(),
        "mode_options": [(m.value, m.value.replace("_", " ")) for m in AccessMode],
        "kinds": [k.value for k in OrgKind],
        "project_options": [("", "choose…")] + [(p.slug, f"{p.slug} — {p.title}")
                                                for p in projects],
        "proposal_options": [("", "none")] + [(str(p.id), f"#{p.id} {p.title} "
                                               f"({p.project.slug}, "
                                               f"{p.requested_gpu_hours:,.0f} GPU-hours)")
                                              for p in accepted],
        "gpu_options": [("", "from the proposal")] + [(g, g) for g in known_gpu_types()],
    }, status_code=status_code)


@router.get("/ops/calls")
def calls_page(
    request: Request, user: User = Depends(operator_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    return _calls_page(request, db, user, now)


CALL_FIELDS = {"slug", "title", "access_mode", "opens_at", "closes_at", "max_gpu_hours",
               "description"}


@router.post("/ops/calls")
def call_create(
    request: Request, form: dict[str, str] = Depends(form_data),
    user: User = Depends(operator_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    errors = FormErrors()
    opens = moment(form, "opens_at", errors, label="Opens")
    closes = moment(form, "closes_at", errors, label="Closes")
    max_hours = number(form, "max_gpu_hours", errors, label="Maximum GPU-hours per proposal",
                       required=False)
    kinds = [k.value for k in OrgKind if checkbox(form, f"kind_{k.value}")]
    call = None
    # Every rule in one round (the service's own checks), with what converted.
    problems = new_call_problems(
        db, user, slug=text(form, "slug"), title=text(form, "title"),
        access_mode=text(form, "access_mode"), opens_at=opens, closes_at=closes, now=now,
        eligible_kinds=kinds or None, max_gpu_hours=max_hours)[2]
    for problem in problems:
        errors.merge(errors_from(problem, fields=CALL_FIELDS))
    if not errors and opens is not None and closes is not None:
        try:
            call = create_call(
                db, user, slug=text(form, "slug"), title=text(form, "title"),
                access_mode=text(form, "access_mode"), opens_at=opens, closes_at=closes,
                description=text(form, "description"), eligible_kinds=kinds or None,
                max_gpu_hours=max_hours, now=now,
            )
        except RechenwerkError as exc:
            db.rollback()
            errors = errors_from(exc, fields=CALL_FIELDS)
    if errors or call is None:
        return _calls_page(request, db, user, now, call_form=form, call_errors=errors,
                           status_code=422)
    return flash_redirect(request, "/ops/calls",
                          f"Call {call.slug!r} created.")


def _close_page(request: Request, call: Any, now: Any, errors: FormErrors,
                status_code: int = 200) -> Response:
    return render(request, "ops/call_close.html", {
        "title": f"Close call {call.slug}", "section": "calls", "call": call,
        "status": call_status(call, now), "errors": errors,
    }, status_code=status_code)


@router.get("/ops/calls/{slug}/close")
def call_close_confirm(
    request: Request, slug: str, user: User = Depends(operator_user),
    db: Session = Depends(get_session), now: Any = Depends(get_now),
) -> Response:
    """The confirmation step before closing a call early (works without JavaScript)."""
    return _close_page(request, get_call(db, slug), now, FormErrors())


@router.post("/ops/calls/{slug}/close")
def call_close(
    request: Request, slug: str, form: dict[str, str] = Depends(form_data),
    user: User = Depends(operator_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    call = get_call(db, slug)
    if form.get("confirm") != "yes":  # closing is final: never on a stray click or replay
        errors = FormErrors()
        errors.add("_form", f"Call {call.slug!r} was not closed: confirm it with the "
                            "button on this page.")
        return _close_page(request, call, now, errors, status_code=422)
    call = close_call(db, user, call, now=now)
    return flash_redirect(request, "/ops/calls",
                          f"Call {call.slug!r} closed.")


AWARD_FIELDS = {"project", "proposal", "gpu_hours", "gpu_type", "starts_at", "period_count",
                "period_months", "carry_over_limit_gpu_hours"}


@router.post("/ops/awards")
def award_create(
    request: Request, form: dict[str, str] = Depends(form_data),
    user: User = Depends(operator_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    errors = FormErrors()
    hours = number(form, "gpu_hours", errors, label="GPU-hours")
    starts = moment(form, "starts_at", errors, label="Start")
    count = number(form, "period_count", errors, label="Periods", integer=True, minimum=1)
    months = number(form, "period_months", errors, label="Months per period", integer=True,
                    minimum=1)
    carry = number(form, "carry_over_limit_gpu_hours", errors, label="Carry-over limit",
                   required=False, minimum=0)
    if not text(form, "project"):
        errors.add("project", "Project is required")
    award = None
    project = proposal = None
    try:
        project = get_project(db, text(form, "project")) if text(form, "project") else None
    except RechenwerkError as exc:
        errors.merge(errors_from(exc, {exc.field or "project": "project"}, fields={"project"}))
    try:
        proposal_id = ref_is_id(text(form, "proposal"))
        proposal = visible_proposal(db, user, proposal_id) if proposal_id is not None else None
    except RechenwerkError as exc:
        errors.merge(errors_from(exc, {exc.field or "proposal": "proposal"},
                                 fields={"proposal"}))
    if project is not None:
        # Every rule in one round (the service's own checks), with what converted.
        for problem in new_award_problems(
                db, project=project, gpu_hours=hours, gpu_type=text(form, "gpu_type") or None,
                proposal=proposal, carry_over_limit_gpu_hours=(
                    None if "carry_over_limit_gpu_hours" in errors else carry or 0.0))[1]:
            errors.merge(errors_from(problem, fields=AWARD_FIELDS))
    if not errors and starts is not None and project is not None:
        try:
            award = create_award(
                db, user, project=project, gpu_hours=float(hours), starts_at=starts,
                gpu_type=text(form, "gpu_type") or None, proposal=proposal,
                period_count=int(count), period_months=int(months),
                carry_over_limit_gpu_hours=float(carry or 0.0), now=now,
            )
        except RechenwerkError as exc:
            db.rollback()
            errors = errors_from(exc, fields=AWARD_FIELDS)
    if errors or award is None:
        return _calls_page(request, db, user, now, award_form=form, award_errors=errors,
                           status_code=422)
    return flash_redirect(
        request, "/ops/calls#awards",
        f"Award {award.id}: {award.gpu_hours:,.0f} GPU-hours ({award.gpu_type}) to "
        f"{award.project.slug} in {len(award.periods)} period(s).")


@router.get("/ops/audit")
def audit_page(
    request: Request, entity: str = "", actor: str = "", action: str = "", page: int = 1,
    user: User = Depends(operator_user), db: Session = Depends(get_session),
) -> Response:
    page = max(page, 1)
    result = list_audit(db, user, entity=entity or None, user=actor or None,
                        action=action or None, limit=AUDIT_PAGE,
                        offset=(page - 1) * AUDIT_PAGE)
    return render(request, "ops/audit.html", {
        "title": "Audit log", "section": "audit", "entries": result.items,
        "total": result.total, "page": page, "pages": max(1, -(-result.total // AUDIT_PAGE)),
        "filters": {"entity": entity, "actor": actor, "action": action},
    })
