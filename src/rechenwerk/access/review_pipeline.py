"""The review pipeline of a proposal: the steps its call type lists (``review_steps``, a
subset in the order of ``call_type_rules.REVIEW_STEPS``), which are done, and the one it
is at. Steps the type does not list are skipped: a playground type with eligibility,
technical and decision goes from the technical assessment straight to the decision.

When a step is done (derived from the data, nothing stored beside it):
- eligibility, technical: the latest operator assessment of the step is a pass;
- scientific: the call type's ``min_reviews`` submitted reviews (by reviewers who
  accepted their invitation);
- right_to_reply: the applicant replied once, or the reply deadline (the setting
  ``right_to_reply_working_days`` from the day the steps before were complete) passed;
- ranking: an operator confirmed the call's ranking with the proposal in it
  (:func:`call_ranking`, :func:`confirm_ranking`).

The deadline makes a step depend on the day: callers give ``today`` (None: the deadline
is not taken as passed) and the centre's ``holidays``.

Operators (site staff) record the eligibility check and the technical assessment in that
order; a fail lets them reject the proposal before the remaining steps.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rechenwerk.access.audit import record
from rechenwerk.access.call_type_rules import REVIEW_STEPS
from rechenwerk.access.models import (
    Call,
    Proposal,
    ProposalAssessment,
    ProposalState,
    Review,
    User,
)
from rechenwerk.access.proposal_states import OPEN_STATES, transition
from rechenwerk.access.security import require_operator
from rechenwerk.access.validation import check_choice
from rechenwerk.access.workdays import add_working_days
from rechenwerk.config import Settings
from rechenwerk.errors import Conflict, InvalidInput, InvalidTransition

ASSESSED_STEPS = ("eligibility", "technical")  # recorded by operators as an assessment
OUTCOMES = ("pass", "fail")
NOTE_MAX = 4000
REPLY_MAX = 10_000
REPLY_WORKING_DAYS = 10  # the default of the setting right_to_reply_working_days


@dataclass(frozen=True, slots=True)
class Deadlines:
    """What the day-dependent steps need: today (None: no deadline counts as passed),
    the centre's holidays and the right-to-reply period in working days."""

    today: date | None = None
    holidays: Collection[date] = frozenset()
    reply_days: int = REPLY_WORKING_DAYS

    @classmethod
    def from_settings(cls, settings: Settings, today: date) -> Deadlines:
        """Today's deadlines under the centre's holidays and right-to-reply period."""
        return cls(today=today, holidays=settings.holiday_dates,
                   reply_days=settings.right_to_reply_working_days)


NO_DEADLINES = Deadlines()


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


def _done_at(session: Session, proposal: Proposal, step: str) -> datetime | None:
    """When ``step`` was done (assessed or scientific; None: not done or no time)."""
    if step in ASSESSED_STEPS:
        last = latest_assessment(session, proposal, step)
        return last.at if last is not None and last.outcome == "pass" else None
    if step == "scientific":
        need = proposal.call.call_type.min_reviews
        times = list(session.scalars(select(Review.submitted_at).where(
            Review.proposal_id == proposal.id, Review.submitted_at.is_not(None))
            .order_by(Review.submitted_at)))
        return times[need - 1] if len(times) >= need else None
    return None


def reply_due(session: Session, proposal: Proposal,
              deadlines: Deadlines = NO_DEADLINES) -> date | None:
    """The last day of the applicant's reply: ``reply_days`` working days after the day
    the steps before right_to_reply were all done; None while they are not."""
    before = [s for s in steps_of(proposal)
              if REVIEW_STEPS.index(s) < REVIEW_STEPS.index("right_to_reply")]
    times = []
    for step in before:
        at = _done_at(session, proposal, step)
        if at is None:
            return None
        times.append(at)
    opened = max(times) if times else proposal.submitted_at
    if opened is None:
        return None
    return add_working_days(opened.date(), deadlines.reply_days, deadlines.holidays)


def _status(session: Session, proposal: Proposal, step: str,
            deadlines: Deadlines = NO_DEADLINES) -> StepStatus:
    if step == "right_to_reply":
        if proposal.replied_at is not None:
            return StepStatus(step, True, f"the applicant replied on "
                              f"{proposal.replied_at:%Y-%m-%d}")
        due = reply_due(session, proposal, deadlines)
        if due is None:
            return StepStatus(step, False, "opens when the reviews are complete")
        if deadlines.today is not None and deadlines.today > due:
            return StepStatus(step, True, f"no reply by {due} (the deadline passed)")
        return StepStatus(step, False, f"the applicant may reply until {due}")
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
    if step == "ranking":
        if proposal.ranked_at is not None:
            rec = proposal.recommended_gpu_hours
            return StepStatus(step, True, f"ranked on {proposal.ranked_at:%Y-%m-%d}"
                              + (f", {rec:g} GPU-hours recommended" if rec is not None
                                 else ""))
        return StepStatus(step, False, f"waits for the ranking of call {proposal.call.slug}")
    return StepStatus(step, True, "passed through")


def pipeline(session: Session, proposal: Proposal,
             deadlines: Deadlines = NO_DEADLINES) -> list[StepStatus]:
    """Each listed step with whether it is done."""
    return [_status(session, proposal, step, deadlines) for step in steps_of(proposal)]


def current_step(session: Session, proposal: Proposal,
                 statuses: list[StepStatus] | None = None,
                 deadlines: Deadlines = NO_DEADLINES) -> str | None:
    """The step a submitted or under-review proposal is at (the first not done); None for
    drafts and decided or withdrawn proposals."""
    if proposal.state not in OPEN_STATES:
        return None
    for st in statuses if statuses is not None else pipeline(session, proposal, deadlines):
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


def require_ready_for_decision(session: Session, proposal: Proposal, decision: str,
                               deadlines: Deadlines = NO_DEADLINES) -> None:
    """Refuse a decision before the steps before it are done, naming the missing step; a
    rejection is allowed early after a failed eligibility or technical assessment."""
    if proposal.state not in OPEN_STATES:
        return  # the transition table refuses with its own words
    statuses = pipeline(session, proposal, deadlines)
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


def submit_reply(session: Session, actor: User, proposal: Proposal, *, text: str,
                 now: datetime, deadlines: Deadlines = NO_DEADLINES) -> Proposal:
    """The applicant's one reply to the reviews (the project's PI), while the proposal is
    at the right_to_reply step and until its deadline."""
    from rechenwerk.access.proposals import require_proposal_pi  # proposals imports us

    require_proposal_pi(session, actor, proposal, "reply to the reviews of")
    text = text.strip()
    if not text:
        raise InvalidInput("text: write the reply", field="text")
    if len(text) > REPLY_MAX:
        raise InvalidInput(f"text: at most {REPLY_MAX} characters, got {len(text)}",
                           field="text")
    if proposal.replied_at is not None:
        raise Conflict(f"you already replied to the reviews of proposal {proposal.id} on "
                       f"{proposal.replied_at:%Y-%m-%d}; there is one reply", field="text")
    if proposal.state not in OPEN_STATES:
        raise InvalidTransition(f"proposal {proposal.id} is {proposal.state}; the reply "
                                "is no longer possible", field="state")
    if "right_to_reply" not in steps_of(proposal):
        raise Conflict(f"call type {proposal.call.call_type.key!r} has no right to reply",
                       field="text")
    today = replace_today(deadlines, now)
    due = reply_due(session, proposal, today)
    at = current_step(session, proposal, deadlines=today)
    if due is not None and now.date() > due:
        raise Conflict(f"the reply to the reviews of proposal {proposal.id} was due by "
                       f"{due}", field="text")
    if at != "right_to_reply":
        raise Conflict(f"proposal {proposal.id} is at the {at} step; the reply comes "
                       "once the reviews are complete", field="text")
    proposal.reply_text = text
    proposal.replied_at = now
    record(session, actor, "proposal.reply", "proposal", proposal.id,
           {"characters": len(text), "due_on": due.isoformat() if due else None}, at=now)
    return proposal


def replace_today(deadlines: Deadlines, now: datetime) -> Deadlines:
    return Deadlines(today=now.date(), holidays=deadlines.holidays,
                     reply_days=deadlines.reply_days)


@dataclass(frozen=True, slots=True)
class RankRow:
    position: int
    proposal: Proposal
    mean_score: float
    cumulative_gpu_hours: float
    recommended_gpu_hours: float


def call_ranking(session: Session, call: Call,
                 deadlines: Deadlines = NO_DEADLINES) -> list[RankRow]:
    """The proposals of ``call`` at the ranking step, best mean score first (mean of the
    technical and scientific scores of the submitted reviews; tie: earlier submission),
    with the cumulative requested GPU-hours and the recommended grant against the call's
    budget: in full while it lasts, the remainder for the first that does not fit, 0
    after (no budget: in full)."""
    waiting = [p for p in session.scalars(select(Proposal).where(
        Proposal.call_id == call.id, Proposal.state == ProposalState.UNDER_REVIEW.value,
        Proposal.ranked_at.is_(None)))
        if current_step(session, p, deadlines=deadlines) == "ranking"]
    scored = []
    for p in waiting:
        scores = [((r.technical_score or 0) + (r.scientific_score or 0)) / 2
                  for r in session.scalars(select(Review).where(
                      Review.proposal_id == p.id, Review.submitted_at.is_not(None)))]
        scored.append((sum(scores) / len(scores) if scores else 0.0, p))
    scored.sort(key=lambda sp: (-sp[0], sp[1].submitted_at or sp[1].created_at, sp[1].id))
    rows, total = [], 0.0
    left = call.budget_gpu_hours
    for i, (mean, p) in enumerate(scored, 1):
        total += p.requested_gpu_hours
        if left is None:
            rec = p.requested_gpu_hours
        else:
            rec = min(p.requested_gpu_hours, max(left, 0.0))
            left -= rec
        rows.append(RankRow(i, p, round(mean, 2), total, rec))
    return rows


def confirm_ranking(session: Session, actor: User, call: Call, *, now: datetime,
                    deadlines: Deadlines = NO_DEADLINES) -> list[RankRow]:
    """An operator confirms the call's ranking as it stands: the ranking step of every
    proposal in it is done, with its recommended grant kept."""
    require_operator(actor)
    rows = call_ranking(session, call, deadlines)
    if not rows:
        raise Conflict(f"no proposal of call {call.slug!r} is at the ranking step",
                       field="call", hint="Proposals get there after their reviews (and "
                       "the right to reply, where the type lists it).")
    for row in rows:
        row.proposal.ranked_at = now
        row.proposal.recommended_gpu_hours = row.recommended_gpu_hours
    record(session, actor, "call.ranking_confirmed", "call", call.id,
           {"budget_gpu_hours": call.budget_gpu_hours,
            "ranking": [[r.proposal.id, r.mean_score, r.recommended_gpu_hours]
                        for r in rows]}, at=now)
    return rows
