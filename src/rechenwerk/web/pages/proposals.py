"""Proposals: PIs write and submit them and see the decision; operators assign reviewers
(conflicts of interest shown) and decide; reviewers score them (see ``reviews.py``).

Every rule (who may see, write, submit, assign, decide) is the access service's."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from rechenwerk.access import estimates, review_pipeline
from rechenwerk.access.calls import get_call, list_calls
from rechenwerk.access.gpu_types import known_gpu_types
from rechenwerk.access.models import (
    Call,
    Project,
    ProjectRole,
    Proposal,
    ProposalState,
    Review,
    User,
)
from rechenwerk.access.projects import (
    list_projects,
    membership,
    require_project_role,
    visible_project,
)
from rechenwerk.access.proposal_states import is_overdue
from rechenwerk.access.proposals import (
    EDITABLE_PROPOSAL_FIELDS,
    create_proposal,
    decide_proposal,
    edit_issues,
    list_proposals,
    new_proposal_issues,
    require_may_apply,
    require_proposal_pi,
    submit_proposal,
    update_proposal,
    visible_proposal,
    withdraw_proposal,
)
from rechenwerk.access.reviews import assign_reviewer, list_reviews
from rechenwerk.api.deps import get_now, get_session, inventory_of, rollback_request, settings_of
from rechenwerk.errors import Conflict, InvalidInput, RechenwerkError, invalid_input
from rechenwerk.web.deps import form_data, portal_user
from rechenwerk.web.forms import FormErrors, checkbox, errors_from, number, text
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute
from rechenwerk.web.session import flash_redirect, set_flash

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

PAGE_SIZE = 50
PROPOSAL_FIELDS = {"call", "project", "title", "abstract", "justification", "gpu_type",
                   "requested_gpu_hours", "duration_months"}
EDIT_FIELDS = set(EDITABLE_PROPOSAL_FIELDS)
WITHDRAWABLE = (ProposalState.DRAFT.value, ProposalState.SUBMITTED.value,
                ProposalState.UNDER_REVIEW.value)


# The estimate box's inputs as the fragment hands them to the proposal form (hidden
# fields, ``form="proposal-form"``), by estimator input name.
ATTACH_FIELDS = {"params": "estimate_params", "tokens": "estimate_tokens",
                 "gpus": "estimate_gpus", "gpu": "estimate_gpu"}
BOX_FIELDS = {"params": "est_params", "tokens": "est_tokens", "gpus": "est_gpus"}


def estimate_view(proposal: Proposal) -> dict[str, Any] | None:
    """The attached estimate's key numbers and how the request compares (or None), for the
    proposal and review pages."""
    if proposal.estimate_inputs is None or proposal.estimate_result is None:
        return None
    return {**estimates.summary(proposal.estimate_inputs, proposal.estimate_result,
                                proposal.requested_gpu_hours),
            "attached_at": proposal.estimate_attached_at}


def _attached_inputs(form: dict[str, str]) -> dict[str, Any] | None:
    """The estimator inputs to attach, if the box computed one and "attach" is ticked.
    Values stay text: the planner's schema converts and checks them."""
    if not checkbox(form, "attach_estimate") or not text(form, ATTACH_FIELDS["params"]):
        return None
    return {key: text(form, name).replace(",", "") for key, name in ATTACH_FIELDS.items()
            if text(form, name)}


def _box_number(value: Any) -> str:
    """A number for the box's text fields: 7e9 -> "7000000000" (12 significant digits, so
    estimating again gives the same result)."""
    try:
        return f"{float(value):.12g}"
    except (TypeError, ValueError):
        return str(value)


def _box_state(form: dict[str, str]) -> dict[str, Any]:
    """Re-render the estimate box as it was when a proposal form comes back with errors:
    its inputs and, if they still estimate, the result with "attach" as it was ticked."""
    inputs = {key: text(form, name) for key, name in ATTACH_FIELDS.items() if text(form, name)}
    if not inputs:
        return {}
    for key, name in BOX_FIELDS.items():
        form.setdefault(name, _box_number(inputs.get(key, "")))
    try:
        result = estimates.compute(inputs)
    except InvalidInput:
        return {}
    return {"box": _fragment_context(result, inputs, attach=checkbox(form, "attach_estimate"))}


def _fragment_context(est: estimates.Estimate, inputs: dict[str, Any], *,
                      attach: bool = True) -> dict[str, Any]:
    r = estimates.summary(est.inputs, est.result, est.gpu_hours)
    return {"summary": r, "result": est.result,
            "attach_values": {ATTACH_FIELDS[k]: v for k, v in inputs.items()
                              if k in ATTACH_FIELDS},
            "attach": attach}


def _planner_available() -> bool:
    try:
        import rechenwerk.planning.training  # noqa: F401
    except ImportError:
        return False
    return True


def centre_gpu_types(request: Request) -> list[str]:
    """The GPU types this centre has (its nodes'), in the catalogue's spelling; every
    catalogue type where the inventory names none (a proposal for hardware the centre
    does not run would be awarded hours no job can use)."""
    known = known_gpu_types()
    lowered = {k.lower(): k for k in known}
    have: list[str] = []
    for node in inventory_of(request):
        name = lowered.get((node.gpu_type or "").lower())
        if name and name not in have:
            have.append(name)
    return have or list(known)


def _cap_text(c: Call) -> str:
    """The GPU-hours a proposal to ``c`` may ask for: the call's cap and its type's range."""
    t = c.call_type
    caps = [v for v in (c.max_gpu_hours, t.max_gpu_hours) if v]
    hi = min(caps) if caps else None
    if t.min_gpu_hours and hi:
        return f"{t.min_gpu_hours:,.0f} to {hi:,.0f} GPU-hours"
    if t.min_gpu_hours:
        return f"at least {t.min_gpu_hours:,.0f} GPU-hours"
    return f"up to {hi:,.0f} GPU-hours" if hi else "no cap per proposal"


def duration_text(c: Call) -> str:
    months = c.call_type.duration_months
    if not months:
        return "no duration asked"
    return ", ".join(str(m) for m in months) + " months"


def rules_text(c: Call) -> str:
    """One line of what a call's type asks, for form help and the call's pages."""
    t = c.call_type
    return (f"{t.title}: {_cap_text(c)}; duration {duration_text(c)}; decision within "
            f"{t.decision_working_days} working days"
            + (f" after each {t.cutoff_period} cut-off" if t.submission_mode == "cutoffs"
               else " of submission"))


def _new_form_context(request: Request, db: Session, user: User, now: Any) -> dict[str, Any]:
    calls = list_calls(db, now=now, status="open", limit=200).items
    projects = [p for p in list_projects(db, user, limit=500).items
                if p.pi_user_id == user.id]
    return {
        "calls": calls,
        "call_options": [(c.id, f"{c.title} ({c.access_mode.replace('_', ' ')}, "
                                f"{_cap_text(c)}, closes {c.closes_at:%Y-%m-%d})")
                         for c in calls],
        "caps_help": "; ".join(f"{c.title}: {_cap_text(c)}" for c in calls),
        "duration_help": "; ".join(f"{c.title}: {duration_text(c)}" for c in calls),
        "rules": [(c.title, rules_text(c)) for c in calls],
        "project_options": [(p.slug, f"{p.slug} — {p.title}") for p in projects],
        "gpu_options": [(g, g) for g in centre_gpu_types(request)],
        "planner": _planner_available(),
    }


@router.get("/proposals")
def proposal_list(
    request: Request,
    state: str = "",
    page: int = 1,
    sort: str = "id",
    q: str = "",
    overdue: bool = False,
    user: User = Depends(portal_user),
    db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    page = max(page, 1)
    result = list_proposals(db, user, state=state or None, limit=PAGE_SIZE,
                            offset=(page - 1) * PAGE_SIZE, sort=sort, q=q,
                            overdue_on=now.date() if overdue else None)
    return render(request, "proposals/list.html", {
        "title": "Proposals", "section": "proposals", "proposals": result.items,
        "total": result.total, "page": page, "pages": max(1, -(-result.total // PAGE_SIZE)),
        "state": state, "states": [st.value for st in ProposalState], "q": q,
        "overdue": overdue, "today": now.date(),
        "listing": {"sort": sort.removeprefix("-"), "descending": sort.startswith("-")},
        # Only PIs create proposals (create_proposal); the new form lists their projects.
        "can_propose": db.scalar(select(Project.id).where(Project.pi_user_id == user.id)
                                 .limit(1)) is not None,
    })


@router.get("/proposals/new")
def proposal_new(
    request: Request, call: str = "", project: str = "", user: User = Depends(portal_user),
    db: Session = Depends(get_session), now: Any = Depends(get_now),
) -> Response:
    ctx = _new_form_context(request, db, user, now)
    form = {"call": call, "project": project, "gpu_type": ctx["gpu_options"][0][0]}
    return render(request, "proposals/new.html", {
        "title": "New proposal", "section": "proposals", "form": form, "errors": FormErrors(),
        **ctx,
    })


@router.post("/proposals/new")
def proposal_create(
    request: Request,
    form: dict[str, str] = Depends(form_data),
    user: User = Depends(portal_user),
    db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    errors = FormErrors()
    hours = number(form, "requested_gpu_hours", errors, label="Requested GPU-hours")
    months = number(form, "duration_months", errors, label="Duration", required=False,
                    integer=True, minimum=1)
    for name, label in (("call", "Call"), ("project", "Project"), ("title", "Title")):
        if not text(form, name):
            errors.add(name, f"{label} is required")
    proposal = None
    settings = settings_of(request)
    submitting = form.get("action") == "submit"
    call, project = _form_call_project(db, user, form, errors)
    if call is not None and project is not None:
        # Every rule in one round (the service's own checks), not the first one alone.
        _, _, issues = new_proposal_issues(
            call, project, title=text(form, "title"), gpu_type=text(form, "gpu_type"),
            requested_gpu_hours=None if hours is None else float(hours),
            duration_months=months, estimate=_attached_inputs(form), submitting=submitting)
        if issues:
            errors.merge(errors_from(invalid_input(issues), fields=PROPOSAL_FIELDS))
        try:
            require_may_apply(db, call, project, now=now, block_on_overdue_report=(
                settings.block_proposals_on_overdue_report))
        except RechenwerkError as exc:
            errors.merge(errors_from(exc, fields=PROPOSAL_FIELDS))
    if not errors and call is not None and project is not None:
        try:
            proposal = create_proposal(
                db, user, call=call, project=project, title=text(form, "title"),
                gpu_type=text(form, "gpu_type"), requested_gpu_hours=float(hours),
                abstract=text(form, "abstract"), justification=text(form, "justification"),
                estimate=_attached_inputs(form), duration_months=months, now=now,
                block_on_overdue_report=settings.block_proposals_on_overdue_report,
            )
            if submitting:
                submit_proposal(db, user, proposal, now=now,
                                holidays=settings.holiday_dates,
                                block_on_overdue_report=(
                                    settings.block_proposals_on_overdue_report))
        except RechenwerkError as exc:
            db.rollback()
            errors = errors_from(exc, fields=PROPOSAL_FIELDS)
    if errors or proposal is None:
        return render(request, "proposals/new.html", {
            "title": "New proposal", "section": "proposals", "form": form, "errors": errors,
            **_new_form_context(request, db, user, now), **_box_state(form),
        }, status_code=422)
    response = RedirectResponse(f"/proposals/{proposal.id}", status_code=303)
    verb = "submitted" if proposal.state == "submitted" else "saved as a draft"
    with_estimate = " with its training-compute estimate" if proposal.estimate_inputs else ""
    set_flash(response, settings_of(request), "success",
              f"Proposal {proposal.id} {verb}{with_estimate}.")
    return response


def _form_call_project(db: Session, user: User, form: dict[str, str],
                       errors: FormErrors) -> tuple[Call | None, Project | None]:
    """The form's call and the project its PI applies for (None where not given or not
    usable, with the error beside its field)."""
    call = project = None
    try:
        call = get_call(db, text(form, "call")) if text(form, "call") else None
    except RechenwerkError as exc:
        errors.merge(errors_from(exc, {exc.field or "call": "call"}, fields={"call"}))
    try:
        if text(form, "project"):
            project = visible_project(db, user, text(form, "project"))
            require_project_role(db, user, project, {ProjectRole.PI.value})
    except RechenwerkError as exc:
        project = None
        errors.merge(errors_from(exc, {exc.field or "project": "project"},
                                 fields={"project"}))
    return call, project


@router.post("/proposals/estimate")
def training_estimate(
    request: Request, form: dict[str, str] = Depends(form_data),
    user: User = Depends(portal_user), db: Session = Depends(get_session),
) -> Response:
    """htmx fragment: GPU-hours of a training run from the planner (6·N·D and MFU), with
    the inputs as hidden fields of the proposal form and an "attach" checkbox."""
    errors = FormErrors()
    params = number(form, "est_params", errors, label="Parameters", minimum=1)
    tokens = number(form, "est_tokens", errors, label="Tokens", required=False, minimum=1)
    gpus = number(form, "est_gpus", errors, label="GPUs", integer=True, minimum=1)
    ctx: dict[str, Any] = {}
    if not errors:
        inputs: dict[str, Any] = {"params": params, "gpu": text(form, "gpu_type") or "H100-SXM",
                                  "gpus": int(gpus)}
        if tokens:
            inputs["tokens"] = tokens
        try:
            est = estimates.compute(inputs)
        except InvalidInput as exc:
            errors = errors_from(exc, {f"estimate.{k}": v for k, v in BOX_FIELDS.items()}
                                 | {"estimate.gpu": "gpu_type"})
        else:
            ctx = _fragment_context(est, {**inputs, "gpu": est.gpu})
            ctx["cap"] = _call_cap(db, text(form, "call"))
    return render(request, "proposals/_estimate.html", {"box": ctx, "errors": errors})


def _call_cap(db: Session, ref: str) -> dict[str, Any] | None:
    """The chosen call's cap per proposal, so the estimate never offers more silently."""
    if not ref.isdigit():
        return None
    try:
        call = get_call(db, int(ref))
    except RechenwerkError:
        return None
    if not call.max_gpu_hours:
        return None
    return {"title": call.title, "gpu_hours": float(call.max_gpu_hours)}


def _reviewer_candidates(db: Session, proposal: Proposal) -> list[dict[str, Any]]:
    """Reviewers with their conflict of interest spelled out (the service refuses them)."""
    assigned = {r.reviewer_user_id for r in db.scalars(
        select(Review).where(Review.proposal_id == proposal.id))}
    out = []
    for r in db.scalars(select(User).where(User.is_reviewer.is_(True), User.is_active.is_(True))
                        .order_by(User.username)):
        conflict = None
        if r.organization_id is not None and r.organization_id == proposal.project.organization_id:
            conflict = f"same organisation as the applicant ({proposal.project.organization.name})"
        elif membership(db, r, proposal.project) is not None:
            conflict = "member of the applying project"
        out.append({"user": r, "conflict": conflict, "assigned": r.id in assigned})
    return out


@router.get("/proposals/{proposal_id}")
def proposal_detail(
    request: Request, proposal_id: int, user: User = Depends(portal_user),
    db: Session = Depends(get_session), now: Any = Depends(get_now),
) -> Response:
    proposal = visible_proposal(db, user, proposal_id)
    return _detail(request, db, user, proposal, FormErrors(), {})


def _may_change(db: Session, user: User, proposal: Proposal) -> bool:
    """The PI or an operator: who may edit a draft and withdraw (the service decides)."""
    try:
        require_proposal_pi(db, user, proposal, "change")
    except RechenwerkError:
        return False
    return True


def _draft_form(proposal: Proposal) -> dict[str, str]:
    form = {"title": proposal.title, "abstract": proposal.abstract,
            "justification": proposal.justification, "gpu_type": proposal.gpu_type,
            "requested_gpu_hours": f"{proposal.requested_gpu_hours:g}",
            "duration_months": str(proposal.duration_months or "")}
    # The estimate box starts from the attached estimate's inputs, ready to adjust.
    for key, name in BOX_FIELDS.items():
        value = (proposal.estimate_inputs or {}).get(key)
        if value is not None:
            form[name] = _box_number(value)
    return form


def _deadlines(request: Request) -> review_pipeline.Deadlines:
    return review_pipeline.Deadlines.from_settings(settings_of(request),
                                                   get_now(request).date())


def _detail(request: Request, db: Session, user: User, proposal: Proposal, errors: FormErrors,
            form: dict[str, str], status_code: int = 200) -> Response:
    reviews = list_reviews(db, user, proposal)
    is_pi = proposal.project.pi_user_id == user.id
    may_change = _may_change(db, user, proposal)
    editable = may_change and proposal.state == ProposalState.DRAFT.value
    own_review = next((r for r in reviews if r.reviewer_user_id == user.id), None)
    deadlines = _deadlines(request)
    steps = review_pipeline.pipeline(db, proposal, deadlines)
    return render(request, "proposals/detail.html", {
        "steps": steps, "step": review_pipeline.current_step(db, proposal, steps),
        "reply_due": review_pipeline.reply_due(db, proposal, deadlines)
        if "right_to_reply" in review_pipeline.steps_of(proposal) else None,
        "assessments": review_pipeline.assessments(db, proposal),
        "title": f"Proposal {proposal.id}", "section": "proposals", "p": proposal,
        "reviews": reviews, "is_pi": is_pi, "own_review": own_review,
        "show_reviewer_names": user.is_operator,
        "candidates": _reviewer_candidates(db, proposal) if user.is_operator else [],
        "errors": errors, "form": form or (_draft_form(proposal) if editable else {}),
        "editable": editable,
        "may_withdraw": may_change and proposal.state in WITHDRAWABLE,
        "gpu_options": [(g, g) for g in dict.fromkeys(
            [*centre_gpu_types(request), proposal.gpu_type])] if editable else [],
        "planner": editable and _planner_available(),
        "est": estimate_view(proposal),
        "rules": rules_text(proposal.call),
        "overdue": is_overdue(proposal, get_now(request).date()),
        **(_box_state(form) if editable else {}),
    }, status_code=status_code)


@router.post("/proposals/{proposal_id}/submit")
def proposal_submit(
    request: Request, proposal_id: int, user: User = Depends(portal_user),
    db: Session = Depends(get_session), now: Any = Depends(get_now),
) -> Response:
    proposal = visible_proposal(db, user, proposal_id)
    try:
        submit_proposal(db, user, proposal, now=now,
                        holidays=settings_of(request).holiday_dates,
                        block_on_overdue_report=(
                            settings_of(request).block_proposals_on_overdue_report))
    except InvalidInput as exc:  # the draft does not fit the call type: say where
        rollback_request(request)
        proposal = visible_proposal(db, user, proposal_id)
        return _detail(request, db, user, proposal, errors_from(exc, fields=EDIT_FIELDS), {},
                       exc.http_status)
    return flash_redirect(request, f"/proposals/{proposal.id}",
                          f"Proposal {proposal.id} submitted; an operator will assign reviewers.")


def _detail_with_error(request: Request, db: Session, user: User, proposal_id: int,
                       exc: RechenwerkError, form: dict[str, str]) -> Response:
    """The proposal page again with the operator's form input and the error, nothing kept."""
    db.rollback()
    proposal = visible_proposal(db, user, proposal_id)
    return _detail(request, db, user, proposal,
                   errors_from(exc, fields={"reviewer", "decision", "comment", "step",
                                             "outcome", "note", "text",
                                             "granted_gpu_hours"}), form,
                   exc.http_status)


@router.post("/proposals/{proposal_id}/assign")
def proposal_assign(
    request: Request, proposal_id: int, form: dict[str, str] = Depends(form_data),
    user: User = Depends(portal_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    proposal = visible_proposal(db, user, proposal_id)
    try:
        review = assign_reviewer(db, user, proposal, reviewer=text(form, "reviewer"),
                                 now=now, holidays=settings_of(request).holiday_dates)
    except RechenwerkError as exc:
        return _detail_with_error(request, db, user, proposal_id, exc, form)
    return flash_redirect(request, f"/proposals/{proposal.id}",
                          f"{review.reviewer.username} invited to review proposal {proposal.id} "
                          f"(answer by {review.due_on}).")


@router.post("/proposals/{proposal_id}/assess")
def proposal_assess(
    request: Request, proposal_id: int, form: dict[str, str] = Depends(form_data),
    user: User = Depends(portal_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    proposal = visible_proposal(db, user, proposal_id)
    try:
        row = review_pipeline.record_assessment(
            db, user, proposal, step=text(form, "step"), outcome=text(form, "outcome"),
            note=text(form, "note"), now=now)
    except RechenwerkError as exc:
        return _detail_with_error(request, db, user, proposal_id, exc, form)
    response = RedirectResponse(f"/proposals/{proposal.id}", status_code=303)
    after = review_pipeline.current_step(db, proposal)
    set_flash(response, settings_of(request), "success",
              f"{row.step.capitalize()} of proposal {proposal.id}: {row.outcome}."
              + (" You may reject it now." if row.outcome == "fail"
                 else f" Next step: {(after or '').replace('_', ' ')}."))
    return response


@router.post("/proposals/{proposal_id}/reply")
def proposal_reply(
    request: Request, proposal_id: int, form: dict[str, str] = Depends(form_data),
    user: User = Depends(portal_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    proposal = visible_proposal(db, user, proposal_id)
    try:
        review_pipeline.submit_reply(db, user, proposal, text=text(form, "text"), now=now,
                                     deadlines=_deadlines(request))
    except RechenwerkError as exc:
        return _detail_with_error(request, db, user, proposal_id, exc, form)
    return flash_redirect(request, f"/proposals/{proposal.id}",
                          f"Your reply to the reviews of proposal {proposal.id} was sent.")


@router.post("/proposals/{proposal_id}/decide")
def proposal_decide(
    request: Request, proposal_id: int, form: dict[str, str] = Depends(form_data),
    user: User = Depends(portal_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    proposal = visible_proposal(db, user, proposal_id)
    try:
        deadlines = _deadlines(request)
        raw = text(form, "granted_gpu_hours").replace(",", "")
        try:
            granted = float(raw) if raw else None
        except ValueError:
            raise InvalidInput(f"granted_gpu_hours: must be a number, got {raw!r}",
                               field="granted_gpu_hours") from None
        decide_proposal(db, user, proposal, decision=text(form, "decision"),
                        comment=text(form, "comment"), now=now,
                        holidays=deadlines.holidays, reply_days=deadlines.reply_days,
                        granted_gpu_hours=granted)
    except RechenwerkError as exc:
        return _detail_with_error(request, db, user, proposal_id, exc, form)
    response = RedirectResponse(f"/proposals/{proposal.id}", status_code=303)
    next_step = (" Create the award under Calls & awards." if proposal.state == "accepted"
                 else "")
    set_flash(response, settings_of(request), "success",
              f"Proposal {proposal.id} {proposal.state}.{next_step}")
    return response


@router.post("/proposals/{proposal_id}/edit")
def proposal_edit(
    request: Request, proposal_id: int, form: dict[str, str] = Depends(form_data),
    user: User = Depends(portal_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    """Save the draft's edit form; mistakes come back beside their fields, input kept."""
    proposal = visible_proposal(db, user, proposal_id)
    errors = FormErrors()
    hours = number(form, "requested_gpu_hours", errors, label="Requested GPU-hours")
    months = number(form, "duration_months", errors, label="Duration", required=False,
                    integer=True, minimum=1)
    for name, label in (("title", "Title"), ("gpu_type", "GPU type")):
        if not text(form, name):
            errors.add(name, f"{label} is required")
    changed: list[str] = []
    attach = _attached_inputs(form)
    remove = attach is None and checkbox(form, "remove_estimate")
    if proposal.state == ProposalState.DRAFT.value and _may_change(db, user, proposal):
        # Every rule in one round (the service's own checks), not the first one alone.
        _, _, issues = edit_issues(
            proposal, title=text(form, "title"), gpu_type=text(form, "gpu_type") or None,
            requested_gpu_hours=None if hours is None else float(hours),
            duration_months=months, estimate=attach, remove_estimate=remove)
        if issues:
            errors.merge(errors_from(invalid_input(issues), fields=EDIT_FIELDS))
    if not errors:
        before = _draft_form(proposal)
        est_before = (proposal.estimate_inputs, proposal.estimate_attached_at)
        try:
            update_proposal(
                db, user, proposal, title=text(form, "title"), abstract=text(form, "abstract"),
                justification=text(form, "justification"), gpu_type=text(form, "gpu_type"),
                requested_gpu_hours=float(hours), duration_months=months, estimate=attach,
                # a new estimate replaces the old one anyway
                remove_estimate=remove,
                now=now)
        except RechenwerkError as exc:
            rollback_request(request)
            errors = errors_from(exc, fields=EDIT_FIELDS)
            proposal = visible_proposal(db, user, proposal_id)
            return _detail(request, db, user, proposal, errors, form, exc.http_status)
        after = _draft_form(proposal)
        changed = [k for k in before if k in EDIT_FIELDS and after.get(k) != before[k]]
        if (proposal.estimate_inputs, proposal.estimate_attached_at) != est_before:
            changed.append("estimate")
    if errors:
        return _detail(request, db, user, proposal, errors, form, 422)
    return flash_redirect(
        request, f"/proposals/{proposal.id}",
        f"Proposal {proposal.id} saved ({', '.join(changed).replace('_', ' ')} changed)."
        if changed else f"Proposal {proposal.id}: nothing changed.")


def _withdraw_page(request: Request, db: Session, user: User, proposal: Proposal,
                   form: dict[str, str], errors: FormErrors, status_code: int = 200) -> Response:
    open_reviews = int(db.scalar(select(func.count()).select_from(Review).where(
        Review.proposal_id == proposal.id, Review.submitted_at.is_(None))) or 0)
    return render(request, "proposals/withdraw.html", {
        "title": f"Withdraw proposal {proposal.id}", "section": "proposals", "p": proposal,
        "form": form, "errors": errors, "open_reviews": open_reviews,
        "withdrawable": proposal.state in WITHDRAWABLE,
    }, status_code=status_code)


@router.get("/proposals/{proposal_id}/withdraw")
def proposal_withdraw_confirm(
    request: Request, proposal_id: int, user: User = Depends(portal_user),
    db: Session = Depends(get_session),
) -> Response:
    """The confirmation step before withdrawing (works without JavaScript)."""
    proposal = visible_proposal(db, user, proposal_id)
    require_proposal_pi(db, user, proposal, "withdraw")
    return _withdraw_page(request, db, user, proposal, {}, FormErrors())


@router.post("/proposals/{proposal_id}/withdraw")
def proposal_withdraw(
    request: Request, proposal_id: int, form: dict[str, str] = Depends(form_data),
    user: User = Depends(portal_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    proposal = visible_proposal(db, user, proposal_id)
    try:
        withdraw_proposal(db, user, proposal, reason=text(form, "reason"), now=now)
    except (InvalidInput, Conflict) as exc:  # other errors (403/404) are error pages
        rollback_request(request)
        proposal = visible_proposal(db, user, proposal_id)
        return _withdraw_page(request, db, user, proposal, form,
                              errors_from(exc, fields={"reason"}), exc.http_status)
    return flash_redirect(
        request, f"/proposals/{proposal.id}",
        f"Proposal {proposal.id} withdrawn. To apply again, write a new proposal.")
