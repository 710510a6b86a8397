"""The review pipeline of a proposal: the steps its call type lists (``review_steps``, a
subset in the order of ``call_type_rules.REVIEW_STEPS``), which are done, and the one it
is at. Steps the type does not list are skipped: a playground type with eligibility,
technical and decision goes from the technical assessment straight to the decision.

When a step is done (derived from the data, nothing stored beside it):
- eligibility, technical: the latest operator assessment of the step is a pass;
- scientific: the call type's ``min_reviews`` submitted reviews (by reviewers who
  accepted their invitation);
- right_to_reply, ranking: not run by Rechenwerk yet (issue 15 item 2, later steps);
  they count as done so types listing them can still be decided.

Operators (site staff) record the eligibility check and the technical assessment in that
order; a fail lets them reject the proposal before the remaining steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rechenwerk.access.audit import record
from rechenwerk.access.call_type_rules import REVIEW_STEPS
from rechenwerk.access.models import Proposal, ProposalAssessment, ProposalState, Review, User
from rechenwerk.access.proposal_states import OPEN_STATES, transition
from rechenwerk.access.security import require_operator
from rechenwerk.access.validation import check_choice
from rechenwerk.errors import Conflict, InvalidInput, InvalidTransition

ASSESSED_STEPS = ("eligibility", "technical")  # recorded by operators as an assessment
OUTCOMES = ("pass", "fail")
NOTE_MAX = 4000


@dataclass(frozen=True, slots=True)
class StepStatus:
    step: str
    done: bool
    detail: str  # what is done, or what is missing, in an operator's words


def steps_of(proposal: Proposal) -> tuple[str, ...]:
    """The steps the proposal's call type lists, in order (always ending in decision)."""
    listed = tuple(s for s in REVIEW_STEPS if s in proposal.call.call_type.review_steps)
    return listed if "decision" in listed else (*listed, "decision")


def assessments(session: Session, proposal: Proposal) -> list[ProposalAssessment]:
    return list(session.scalars(select(ProposalAssessment).where(
        ProposalAssessment.proposal_id == proposal.id).order_by(ProposalAssessment.id)))


def latest_assessment(session: Session, proposal: Proposal,
                      step: str) -> ProposalAssessment | None:
    return session.scalars(select(ProposalAssessment).where(
        ProposalAssessment.proposal_id == proposal.id, ProposalAssessment.step == step)
        .order_by(ProposalAssessment.id.desc())).first()


def _status(session: Session, proposal: Proposal, step: str) -> StepStatus:
    if step in ASSESSED_STEPS:
        last = latest_assessment(session, proposal, step)
        if last is None:
            return StepStatus(step, False, f"no {step} assessment recorded yet")
        if last.outcome == "fail":
            return StepStatus(step, False, f"{step} assessment failed on {last.at:%Y-%m-%d}"
                              + (f": {last.note}" if last.note else ""))
        return StepStatus(step, True, f"passed on {last.at:%Y-%m-%d}")
    if step == "scientific":
        n = session.scalar(select(func.count()).select_from(Review).where(
            Review.proposal_id == proposal.id, Review.submitted_at.is_not(None))) or 0
        need = proposal.call.call_type.min_reviews
        return StepStatus(step, n >= need, f"{n} of {need} review(s) submitted")
    if step == "decision":
        decided = proposal.state in (ProposalState.ACCEPTED.value,
                                     ProposalState.REJECTED.value)
        return StepStatus(step, decided, proposal.state if decided else "not decided yet")
    return StepStatus(step, True, "not run by Rechenwerk yet: passed through")


def pipeline(session: Session, proposal: Proposal) -> list[StepStatus]:
    """Each listed step with whether it is done."""
    return [_status(session, proposal, step) for step in steps_of(proposal)]


def current_step(session: Session, proposal: Proposal,
                 statuses: list[StepStatus] | None = None) -> str | None:
    """The step a submitted or under-review proposal is at (the first not done); None for
    drafts and decided or withdrawn proposals."""
    if proposal.state not in OPEN_STATES:
        return None
    for st in statuses if statuses is not None else pipeline(session, proposal):
        if not st.done:
            return st.step
    return "decision"


def failed_step(session: Session, proposal: Proposal) -> ProposalAssessment | None:
    """The failed assessment of the step the proposal is at, if it failed there."""
    step = current_step(session, proposal)
    if step not in ASSESSED_STEPS:
        return None
    last = latest_assessment(session, proposal, step)
    return last if last is not None and last.outcome == "fail" else None


def require_ready_for_decision(session: Session, proposal: Proposal, decision: str) -> None:
    """Refuse a decision before the steps before it are done, naming the missing step; a
    rejection is allowed early after a failed eligibility or technical assessment."""
    if proposal.state not in OPEN_STATES:
        return  # the transition table refuses with its own words
    statuses = pipeline(session, proposal)
    step = current_step(session, proposal, statuses)
    if step == "decision":
        return
    if decision == "rejected" and failed_step(session, proposal) is not None:
        return
    missing = next(st for st in statuses if st.step == step)
    hint = (f"Record it: `rechenwerk proposal assess {proposal.id} {step} pass|fail`."
            if step in ASSESSED_STEPS else
            f"See `rechenwerk proposal pipeline {proposal.id}`.")
    if decision == "rejected" and step in ASSESSED_STEPS:
        hint += " A failed assessment lets you reject at once."
    raise Conflict(f"proposal {proposal.id} is at the {step} step ({missing.detail}); it "
                   "cannot be decided before that step is done", field="decision", hint=hint)


def record_assessment(session: Session, actor: User, proposal: Proposal, *, step: str,
                      outcome: str, now: datetime, note: str = "") -> ProposalAssessment:
    """Record the eligibility check or the technical assessment (operators) of a
    submitted or under-review proposal at that step. A fail needs a note. The first
    assessment starts the review (submitted -> under_review). A step that passed is not
    assessed again; a failed one may be assessed again (after the applicant's answer)."""
    require_operator(actor)
    check_choice(step, set(ASSESSED_STEPS), "step")
    check_choice(outcome, set(OUTCOMES), "outcome")
    note = note.strip()
    if outcome == "fail" and not note:
        raise InvalidInput("note: say why the proposal fails the check", field="note",
                           hint="The note is shown to the applicant with the decision.")
    if len(note) > NOTE_MAX:
        raise InvalidInput(f"note: at most {NOTE_MAX} characters, got {len(note)}",
                           field="note")
    if proposal.state not in OPEN_STATES:
        raise InvalidTransition(
            f"proposal {proposal.id} is {proposal.state.replace('_', ' ')}; only submitted "
            "proposals and proposals under review are assessed", field="state")
    listed = steps_of(proposal)
    ctype = proposal.call.call_type.key
    if step not in listed:
        raise Conflict(f"call type {ctype!r} has no {step} step (its steps: "
                       f"{', '.join(listed)})", field="step")
    at = current_step(session, proposal)
    if at != step:
        done = REVIEW_STEPS.index(step) < REVIEW_STEPS.index(at or "decision")
        raise Conflict(
            f"proposal {proposal.id} is at the {at} step; the {step} step "
            + ("is already done" if done else "comes later"), field="step",
            hint=None if done else f"Record the {at} step first.")
    row = ProposalAssessment(proposal_id=proposal.id, step=step, outcome=outcome, note=note,
                             by_user_id=actor.id, by=actor, at=now)
    session.add(row)
    if proposal.state == ProposalState.SUBMITTED.value:
        transition(session, actor, proposal, ProposalState.UNDER_REVIEW, now, {"step": step})
    session.flush()
    record(session, actor, "proposal.assessment", "proposal", proposal.id,
           {"step": step, "outcome": outcome, **({"note": note} if note else {})}, at=now)
    return row
