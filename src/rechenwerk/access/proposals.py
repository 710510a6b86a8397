"""Proposals: a project's request for GPU-hours in a call, with an optional training
estimate. The PI writes and edits a draft, submits or withdraws it; operators decide it
after review (``access.reviews``). The states and their moves: ``proposal_states``.

Who sees a proposal: operators, members of its project and its assigned reviewers;
everyone else gets NotFound.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from rechenwerk.access import estimates
from rechenwerk.access.audit import record
from rechenwerk.access.call_type_rules import due_date, proposal_issues
from rechenwerk.access.call_types import spec_of
from rechenwerk.access.calls import get_call, require_open
from rechenwerk.access.decision_letter import ReviewComment, render_letter
from rechenwerk.access.gpu_types import validate_gpu_type
from rechenwerk.access.models import (
    Call,
    Project,
    ProjectRole,
    Proposal,
    ProposalState,
    Review,
    User,
)
from rechenwerk.access.paging import Page, paginate
from rechenwerk.access.projects import (
    get_project,
    membership,
    require_approved,
    require_project_role,
)
from rechenwerk.access.proposal_states import OPEN_STATES, transition
from rechenwerk.access.report_tasks import require_no_overdue_final_report
from rechenwerk.access.review_pipeline import (
    REPLY_WORKING_DAYS,
    Deadlines,
    failed_step,
    require_ready_for_decision,
)
from rechenwerk.access.reviews import assigned_review
from rechenwerk.access.security import require_operator
from rechenwerk.access.validation import check_choice, search_pattern
from rechenwerk.access.visibility import can_see_project, filter_id, visible_project_ids
from rechenwerk.errors import (
    Conflict,
    FieldIssue,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    raise_issues,
)

# Fields a PI may change while the proposal is a draft (PATCH /proposals/{id}).
EDITABLE_PROPOSAL_FIELDS = ("title", "abstract", "justification", "gpu_type",
                            "requested_gpu_hours", "duration_months", "estimate")


# --------------------------------------------------------------------------- checks


def _proposal_issues(call: Call, *, title: str | None = None,
                     requested_gpu_hours: float | None = None) -> list[FieldIssue]:
    """What is wrong with a proposal's title and requested GPU-hours (None: not checked),
    shared by create and edit so both refuse the same input with the same words."""
    issues: list[FieldIssue] = []
    if title is not None and not title.strip():
        issues.append(FieldIssue(("title",), "must not be empty"))
    if requested_gpu_hours is None:
        return issues
    if not requested_gpu_hours > 0 or requested_gpu_hours == float("inf"):
        issues.append(FieldIssue(("requested_gpu_hours",),
                                 f"must be a positive number of GPU-hours, got "
                                 f"{requested_gpu_hours}"))
    elif call.max_gpu_hours is not None and requested_gpu_hours > call.max_gpu_hours:
        issues.append(FieldIssue(("requested_gpu_hours",),
                                 f"{requested_gpu_hours:g} GPU-hours exceed the call's "
                                 f"maximum of {call.max_gpu_hours:g}"))
    return issues


def _type_issues(call: Call, project: Project, *, requested_gpu_hours: float | None,
                 duration_months: int | None, submitting: bool) -> list[FieldIssue]:
    """What the call's type says against a proposal of ``project`` with these values
    (``call_type_rules.proposal_issues``); a draft may leave the duration out."""
    if requested_gpu_hours is None or not requested_gpu_hours > 0:
        requested_gpu_hours = None  # reported by _proposal_issues
    org = project.organization
    issues = proposal_issues(spec_of(call.call_type),
                             requested_gpu_hours=requested_gpu_hours or 0.0,
                             duration_months=duration_months, org_kind=org.kind,
                             country=org.country, require_duration=submitting)
    if requested_gpu_hours is None:
        issues = [i for i in issues if i.loc != ("requested_gpu_hours",)]
    return issues


def _gpu_type_issues(value: str) -> tuple[str | None, list[FieldIssue]]:
    """The canonical name of GPU type ``value`` (None if unknown) and why it is not one."""
    try:
        return validate_gpu_type(value), []
    except InvalidInput as exc:
        return None, [FieldIssue(("gpu_type",), exc.message + (
            f". {exc.hint}" if exc.hint else ""))]


def _estimate_issues(inputs: Mapping[str, Any] | None,
                     proposal_gpu: str | None) -> tuple[estimates.Estimate | None,
                                                        list[FieldIssue]]:
    """The computed estimate of ``inputs`` (None if not given) and what is wrong with it:
    planner errors under ``estimate.<field>``, or a GPU type other than the proposal's
    (``proposal_gpu``; None when that is itself invalid and reported elsewhere)."""
    if inputs is None:
        return None, []
    try:
        est = estimates.compute(inputs)
    except InvalidInput as exc:
        return None, list(exc.issues) or [FieldIssue(("estimate",), exc.message)]
    mismatch = estimates.gpu_mismatch(est.gpu, proposal_gpu) if proposal_gpu else None
    if mismatch:
        return None, [FieldIssue(("estimate", "gpu"), mismatch)]
    return est, []


def new_proposal_issues(
    call: Call, project: Project, *, title: str, gpu_type: str,
    requested_gpu_hours: float | None, duration_months: int | None,
    estimate: Mapping[str, Any] | None = None, submitting: bool = False,
) -> tuple[str | None, estimates.Estimate | None, list[FieldIssue]]:
    """Every field rule a new proposal to ``call`` must meet, checked together: the
    title, the GPU type, the call's cap and its type's rules (with the duration asked at
    submission when ``submitting``), the estimate. ``requested_gpu_hours`` None: not
    given in a usable form (the caller reports it). Returns the GPU type's canonical name
    (None if unknown), the computed estimate and the issues (empty: the fields fit)."""
    issues = _proposal_issues(call, title=title, requested_gpu_hours=requested_gpu_hours)
    issues += _type_issues(call, project, requested_gpu_hours=requested_gpu_hours,
                           duration_months=duration_months, submitting=submitting)
    gpu, gpu_issues = _gpu_type_issues(gpu_type)
    issues += gpu_issues
    est, est_issues = _estimate_issues(estimate, gpu)
    return gpu, est, issues + est_issues


def require_may_apply(session: Session, call: Call, project: Project, *, now: datetime,
                      block_on_overdue_report: bool = False) -> None:
    """``project`` may apply to ``call`` now: the call is open, the project approved (and
    without an overdue final report where the centre blocks on it), and its organisation's
    kind eligible for the call."""
    require_open(call, now)
    require_approved(project, "apply for GPU-hours")
    if block_on_overdue_report:
        require_no_overdue_final_report(session, project.id, project.slug, now.date())
    kind = project.organization.kind
    if kind not in call.eligible_kinds:
        raise PermissionDenied(
            f"organisations of kind {kind!r} are not eligible for call {call.slug!r}",
            field="call",
            hint="Eligible kinds: " + ", ".join(call.eligible_kinds) + ". Choose another call.",
        )


def _set_estimate(proposal: Proposal, est: estimates.Estimate | None, now: datetime) -> None:
    proposal.estimate_inputs = est.inputs if est else None
    proposal.estimate_result = est.result if est else None
    proposal.estimate_attached_at = now if est else None


# --------------------------------------------------------------------------- read


def visible_proposal(session: Session, user: User, proposal_id: int) -> Proposal:
    """The proposal if ``user`` is an operator, a member of its project or an assigned
    reviewer; NotFound otherwise."""
    proposal = session.get(Proposal, proposal_id)
    if proposal is not None and (
        can_see_project(session, user, proposal.project_id)
        or assigned_review(session, user, proposal) is not None
    ):
        return proposal
    raise NotFound(f"proposal {proposal_id} not found", field="proposal",
                   hint="List the proposals you can see with `rechenwerk proposal list`.")


# the columns a proposal list can be sorted by (the database sorts; the id breaks ties)
PROPOSAL_SORTS = {"id": Proposal.id, "title": Proposal.title,
                  "gpu_hours": Proposal.requested_gpu_hours, "state": Proposal.state,
                  "submitted": Proposal.submitted_at}


def list_proposals(
    session: Session, user: User, *, call: str | int | None = None,
    project: str | int | None = None, state: str | None = None,
    limit: int = 50, offset: int = 0, sort: str = "id", q: str = "",
    overdue_on: date | None = None,
) -> Page[Proposal]:
    """Proposals the user may see (their projects' and those they review), sorted by a
    column of PROPOSAL_SORTS (``-`` for descending), ``q`` a title search;
    ``overdue_on`` a day: only those whose decision was due before it and is not taken."""
    column = PROPOSAL_SORTS.get(sort.removeprefix("-"))
    if column is None:
        raise InvalidInput(f"cannot sort proposals by {sort.removeprefix('-')!r}",
                           field="sort", hint=f"Sort by one of: {', '.join(PROPOSAL_SORTS)} "
                           "(prefix - for descending).")
    order = column.desc() if sort.startswith("-") else column.asc()
    stmt = select(Proposal).order_by(order, Proposal.id)
    pattern = search_pattern(q)
    if pattern is not None:
        stmt = stmt.where(Proposal.title.ilike(pattern, escape="\\"))
    project_ids = visible_project_ids(session, user)
    if project_ids is not None:
        stmt = stmt.where(or_(
            Proposal.project_id.in_(project_ids),
            Proposal.id.in_(select(Review.proposal_id)
                            .where(Review.reviewer_user_id == user.id)),
        ))
    if call is not None:
        stmt = stmt.where(Proposal.call_id == get_call(session, call).id)
    if project is not None:
        stmt = stmt.where(Proposal.project_id == filter_id(session, user, get_project, project))
    if state is not None:
        stmt = stmt.where(Proposal.state == check_choice(
            state, {s.value for s in ProposalState}, "state"))
    if overdue_on is not None:
        stmt = stmt.where(Proposal.due_on < overdue_on, Proposal.state.in_(OPEN_STATES))
    return paginate(session, stmt, limit, offset)


def require_proposal_pi(session: Session, actor: User, proposal: Proposal,
                        doing: str) -> None:
    """Only the project's PI (or an operator) changes a proposal. Callers have already
    checked that ``actor`` may see it (``visible_proposal``): members in another role and
    assigned reviewers get PermissionDenied, everyone else NotFound."""
    if actor.is_operator:
        return
    m = membership(session, actor, proposal.project)
    if m is not None and m.role == ProjectRole.PI.value:
        return
    if m is None and assigned_review(session, actor, proposal) is None:
        raise NotFound(f"proposal {proposal.id} not found", field="proposal")
    raise PermissionDenied(
        f"only the PI of project {proposal.project.slug!r} may {doing} proposal {proposal.id}",
        field="proposal", hint="Ask the project's PI.")


# --------------------------------------------------------------------------- write
def create_proposal(
    session: Session, actor: User, *, call: Call, project: Project, title: str,
    gpu_type: str, requested_gpu_hours: float, now: datetime, abstract: str = "",
    justification: str = "", estimate: Mapping[str, Any] | None = None,
    duration_months: int | None = None, block_on_overdue_report: bool = False,
) -> Proposal:
    """A draft proposal of ``project`` (its PI or an operator) to an open call that admits
    the project's organisation kind. ``estimate``: optional training-estimate inputs (the
    schema of ``POST /api/v1/plan/train``) for the proposal's GPU type; the planner's
    result is computed and stored with them."""
    require_project_role(session, actor, project, {ProjectRole.PI.value})
    gpu, est, issues = new_proposal_issues(
        call, project, title=title, gpu_type=gpu_type, requested_gpu_hours=requested_gpu_hours,
        duration_months=duration_months, estimate=estimate)
    raise_issues(issues)
    assert gpu is not None  # no issues: the GPU type is known
    gpu_type = gpu
    require_may_apply(session, call, project, now=now,
                      block_on_overdue_report=block_on_overdue_report)
    proposal = Proposal(
        call_id=call.id, call=call, project_id=project.id, project=project,
        applicant_user_id=actor.id, applicant=actor, title=title.strip(), abstract=abstract,
        justification=justification, gpu_type=gpu_type,
        requested_gpu_hours=float(requested_gpu_hours), state=ProposalState.DRAFT.value,
        created_at=now, duration_months=duration_months,
    )
    _set_estimate(proposal, est, now)
    session.add(proposal)
    session.flush()
    changes: dict[str, Any] = {"call": call.slug, "project": project.slug,
                               "gpu_type": gpu_type,
                               "requested_gpu_hours": proposal.requested_gpu_hours}
    if duration_months is not None:
        changes["duration_months"] = duration_months
    if est is not None:
        changes["estimate"] = estimates.audit_value(est.inputs, est.result)
    record(session, actor, "proposal.create", "proposal", proposal.id, changes, at=now)
    return proposal


def edit_issues(
    proposal: Proposal, *, title: str | None = None, gpu_type: str | None = None,
    requested_gpu_hours: float | None = None, duration_months: int | None = None,
    estimate: Mapping[str, Any] | None = None, remove_estimate: bool = False,
) -> tuple[str | None, estimates.Estimate | None, list[FieldIssue]]:
    """Every field rule an edit of draft ``proposal`` must meet, checked together (None
    leaves a field as it is): what :func:`update_proposal` refuses. Returns the new GPU
    type's canonical name (None: unchanged or unknown), the computed estimate and the
    issues (empty: the edit fits)."""
    issues = _proposal_issues(proposal.call, title=title,
                              requested_gpu_hours=requested_gpu_hours)
    if requested_gpu_hours is not None or duration_months is not None:
        issues += _type_issues(
            proposal.call, proposal.project,
            requested_gpu_hours=(requested_gpu_hours if requested_gpu_hours is not None
                                 else proposal.requested_gpu_hours),
            duration_months=(duration_months if duration_months is not None
                             else proposal.duration_months), submitting=False)
    canonical_gpu = None
    gpu_ok = True
    if gpu_type is not None:
        canonical_gpu, gpu_issues = _gpu_type_issues(gpu_type)
        gpu_ok = not gpu_issues
        issues += gpu_issues
    final_gpu = canonical_gpu or proposal.gpu_type
    est, est_issues = _estimate_issues(estimate, final_gpu if gpu_ok else None)
    issues.extend(est_issues)
    if (estimate is None and not remove_estimate and canonical_gpu is not None
            and proposal.estimate_result is not None):
        # The kept estimate must still match: a GPU change without a new estimate would
        # leave reviewers comparing GPU-hours of different hardware.
        kept_gpu = str(proposal.estimate_result["hardware"]["gpu"])
        if estimates.gpu_mismatch(kept_gpu, canonical_gpu):
            issues.append(FieldIssue(("gpu_type",), (
                f"the attached estimate is for {kept_gpu}, not {canonical_gpu}; attach a new "
                f"estimate on {canonical_gpu} or remove it")))
    return canonical_gpu, est, issues


def update_proposal(
    session: Session, actor: User, proposal: Proposal, *, now: datetime,
    title: str | None = None, abstract: str | None = None, justification: str | None = None,
    gpu_type: str | None = None, requested_gpu_hours: float | None = None,
    estimate: Mapping[str, Any] | None = None, remove_estimate: bool = False,
    duration_months: int | None = None,
) -> Proposal:
    """Change a draft (its PI or an operator); None leaves a field as it is. The same
    checks as :func:`create_proposal` (title, GPU type, the call's maximum, the estimate);
    every field is checked before any is changed. ``estimate`` replaces the attached
    estimate, ``remove_estimate`` drops it. Each change is audited as
    ``field: [old, new]``."""
    require_proposal_pi(session, actor, proposal, "edit")
    given = {"title": title, "abstract": abstract, "justification": justification,
             "gpu_type": gpu_type, "requested_gpu_hours": requested_gpu_hours,
             "duration_months": duration_months,
             "estimate": estimate if estimate is not None else (True if remove_estimate
                                                                 else None)}
    if proposal.state != ProposalState.DRAFT.value:
        raise Conflict(
            f"proposal {proposal.id} is {proposal.state.replace('_', ' ')}; only drafts can "
            "be edited (the reviewers assess what was submitted)",
            field="state",
            hint="Withdraw it and write a new proposal"
                 + (f": `rechenwerk proposal withdraw {proposal.id}`."
                    if proposal.state in (ProposalState.SUBMITTED.value,
                                          ProposalState.UNDER_REVIEW.value) else "."))
    if all(v is None for v in given.values()):
        raise InvalidInput("nothing to change", field="proposal",
                           hint="Give at least one of: "
                                + ", ".join(EDITABLE_PROPOSAL_FIELDS) + ".")
    if estimate is not None and remove_estimate:
        raise InvalidInput("estimate: give new estimate inputs or remove the estimate, not "
                           "both", field="estimate")
    canonical_gpu, est, issues = edit_issues(
        proposal, title=title, gpu_type=gpu_type, requested_gpu_hours=requested_gpu_hours,
        duration_months=duration_months, estimate=estimate, remove_estimate=remove_estimate)
    raise_issues(issues)
    new: dict[str, Any] = {
        "title": title.strip() if title is not None else None,
        "abstract": abstract, "justification": justification, "gpu_type": canonical_gpu,
        "requested_gpu_hours": (float(requested_gpu_hours)
                                if requested_gpu_hours is not None else None),
        "duration_months": duration_months,
    }
    changes: dict[str, Any] = {}
    for name in EDITABLE_PROPOSAL_FIELDS:
        if name == "estimate":
            continue
        value, old = new[name], getattr(proposal, name)
        if value is not None and value != old:
            changes[name] = [old, value]
            setattr(proposal, name, value)
    if est is not None or remove_estimate:
        old_est = estimates.audit_value(proposal.estimate_inputs, proposal.estimate_result)
        new_est = estimates.audit_value(est.inputs, est.result) if est else None
        # Same inputs and same result: nothing changed (the attach time stays, too).
        same = (est is not None and est.inputs == proposal.estimate_inputs
                and est.result == proposal.estimate_result)
        if not same and (old_est is not None or new_est is not None):
            changes["estimate"] = [old_est, new_est]
            _set_estimate(proposal, est, now)
    if changes:
        session.flush()
        record(session, actor, "proposal.update", "proposal", proposal.id, changes, at=now)
    return proposal


def withdraw_proposal(session: Session, actor: User, proposal: Proposal, *, now: datetime,
                      reason: str = "") -> Proposal:
    """Withdraw a proposal that is not decided yet (its PI or an operator). Terminal: open
    reviews are no longer requested (reviewers cannot submit them any more)."""
    require_proposal_pi(session, actor, proposal, "withdraw")
    if proposal.state in (ProposalState.ACCEPTED.value, ProposalState.REJECTED.value):
        raise InvalidTransition(
            f"proposal {proposal.id} was already {proposal.state}"
            + (f" on {proposal.decided_at:%Y-%m-%d}" if proposal.decided_at else "")
            + "; a decided proposal cannot be withdrawn",
            field="state",
            hint="An award is not used unless jobs run; ask an operator to change the award."
            if proposal.state == ProposalState.ACCEPTED.value else None)
    if proposal.state == ProposalState.WITHDRAWN.value:
        raise InvalidTransition(f"proposal {proposal.id} is already withdrawn", field="state")
    open_reviews = [r.reviewer.username for r in session.scalars(
        select(Review).where(Review.proposal_id == proposal.id,
                             Review.submitted_at.is_(None)).order_by(Review.id))]
    extra: dict[str, Any] = {"reason": reason.strip()} if reason.strip() else {}
    if open_reviews:
        extra["open_reviews_cancelled"] = open_reviews
    transition(session, actor, proposal, ProposalState.WITHDRAWN, now, extra)
    proposal.withdrawn_at = now
    proposal.withdrawn_by_user_id = actor.id
    proposal.withdrawn_by = actor
    return proposal


def submit_proposal(session: Session, actor: User, proposal: Proposal, *,
                    now: datetime, holidays: Collection[date] = frozenset(),
                    block_on_overdue_report: bool = False) -> Proposal:
    """Submit a draft (its PI) to its open call: it must fit the call type in full (the
    duration too, where the type asks), and gets its decision due date from the type's
    deadline in working days (``holidays``: the centre's calendar) after submission, or
    after the next cut-off for types with cut-offs."""
    require_project_role(session, actor, proposal.project, {ProjectRole.PI.value})
    if proposal.state == ProposalState.DRAFT.value:
        require_open(proposal.call, now)
        if block_on_overdue_report:
            require_no_overdue_final_report(session, proposal.project_id,
                                            proposal.project.slug, now.date())
        raise_issues(_type_issues(proposal.call, proposal.project,
                                  requested_gpu_hours=proposal.requested_gpu_hours,
                                  duration_months=proposal.duration_months,
                                  submitting=True),
                     hint=f"Change the draft first: `rechenwerk proposal edit {proposal.id}`.")
    due = due_date(spec_of(proposal.call.call_type), now.date(), holidays)
    transition(session, actor, proposal, ProposalState.SUBMITTED, now,
               {"due_on": due.isoformat()})
    proposal.submitted_at = now
    proposal.due_on = due
    return proposal


def decide_proposal(session: Session, actor: User, proposal: Proposal, *, decision: str,
                    now: datetime, comment: str = "",
                    holidays: Collection[date] = frozenset(),
                    reply_days: int = REPLY_WORKING_DAYS,
                    granted_gpu_hours: float | None = None) -> Proposal:
    """Accept (granting ``granted_gpu_hours``, default the request; less is a partial
    award) or reject, once every review step before the decision is done; stores the
    decision letter the applicant sees (``decision_letter``)."""
    require_operator(actor)
    check_choice(decision, {"accepted", "rejected"}, "decision")
    target = ProposalState(decision)
    if granted_gpu_hours is not None:
        if target is ProposalState.REJECTED:
            raise InvalidInput("granted_gpu_hours: a rejection grants nothing",
                               field="granted_gpu_hours", hint="Leave it out.")
        if not 0 < granted_gpu_hours <= proposal.requested_gpu_hours:
            raise InvalidInput(
                f"granted_gpu_hours: must be more than 0 and at most the "
                f"{proposal.requested_gpu_hours:g} GPU-hours requested, got "
                f"{granted_gpu_hours:g}", field="granted_gpu_hours")
    require_ready_for_decision(session, proposal, decision, Deadlines(
        today=now.date(), holidays=holidays, reply_days=reply_days))
    granted = (None if target is ProposalState.REJECTED else
               float(granted_gpu_hours if granted_gpu_hours is not None
                     else proposal.requested_gpu_hours))
    extra: dict[str, Any] = {"comment": comment} if comment else {}
    if granted is not None:
        extra["granted_gpu_hours"] = granted
    failed = failed_step(session, proposal) if target is ProposalState.REJECTED else None
    transition(session, actor, proposal, target, now, extra)
    proposal.decided_at = now
    proposal.decision_comment = comment
    proposal.granted_gpu_hours = granted
    submitted = session.scalars(select(Review).where(
        Review.proposal_id == proposal.id, Review.submitted_at.is_not(None))
        .order_by(Review.submitted_at, Review.id))
    proposal.decision_letter = render_letter(
        proposal_id=proposal.id, title=proposal.title, project=proposal.project.slug,
        organization=proposal.project.organization.name, call=proposal.call.title,
        decision=target.value, requested_gpu_hours=proposal.requested_gpu_hours,
        granted_gpu_hours=granted,
        reviews=[ReviewComment(r.technical_score, r.scientific_score, r.comment)
                 for r in submitted],
        failed_check=f"{failed.step}: {failed.note}" if failed is not None else None,
        note=comment)
    return proposal
