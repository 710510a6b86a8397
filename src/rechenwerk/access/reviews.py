"""Reviews of proposals: operators invite reviewers (no conflict of interest) with a
date to answer by, the reviewer accepts or declines (with a reason), accepted reviewers
score a proposal under review. The conflict of interest is checked again at accepting and
at submitting (a reviewer who joined the project or the applicant's organisation since is
refused); and who sees which review."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.access.audit import record
from rechenwerk.access.models import Proposal, ProposalState, Review, User
from rechenwerk.access.projects import membership
from rechenwerk.access.proposal_states import transition
from rechenwerk.access.review_pipeline import reply_due, steps_of
from rechenwerk.access.security import require_operator
from rechenwerk.access.users import get_user
from rechenwerk.access.visibility import can_see_project
from rechenwerk.access.workdays import add_working_days
from rechenwerk.errors import (
    Conflict,
    FieldIssue,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    raise_issues,
)

MIN_SCORE, MAX_SCORE = 1, 5
RESPONSE_WORKING_DAYS = 5  # the default time to answer an invitation


@dataclass(frozen=True, slots=True)
class ConflictOfInterest:
    kind: str  # "organisation" | "member"
    what: str  # "the applicant's organisation (Uni X)" | "the applying project 'alpha'"

    def sentence(self, who: str | None = None) -> str:
        """"you belong to ..." (who=None) or "reviewer 'x' belongs to ..."."""
        if who is None:
            verb = "belong to" if self.kind == "organisation" else "are a member of"
            return f"you {verb} {self.what}"
        verb = "belongs to" if self.kind == "organisation" else "is a member of"
        return f"reviewer {who!r} {verb} {self.what}"


def conflict_of_interest(session: Session, reviewer: User,
                         proposal: Proposal) -> ConflictOfInterest | None:
    """The one conflict-of-interest rule, checked now (memberships and organisations
    change): at assignment, at every review action and on the portal's review form. A
    reviewer from the applicant project's organisation or a member of the project."""
    project = proposal.project
    if reviewer.organization_id is not None and (
            reviewer.organization_id == project.organization_id):
        return ConflictOfInterest(
            "organisation", f"the applicant's organisation ({project.organization.name})")
    if membership(session, reviewer, project) is not None:
        return ConflictOfInterest("member", f"the applying project {project.slug!r}")
    return None


def assigned_review(session: Session, user: User, proposal: Proposal) -> Review | None:
    """``user``'s review of ``proposal`` if they are assigned to it."""
    return session.scalars(select(Review).where(
        Review.proposal_id == proposal.id, Review.reviewer_user_id == user.id)).first()


def assign_reviewer(session: Session, actor: User, proposal: Proposal, *, reviewer: str | int,
                    now: datetime, due_on: date | None = None,
                    holidays: Collection[date] = frozenset()) -> Review:
    """Invite a reviewer (operators) to answer by ``due_on`` (default: 5 working days).
    Refuses non-reviewers, reviewers from the applicant's organisation or project
    (conflict of interest) and call types without a scientific step. The first
    assignment moves the proposal from submitted to under_review."""
    require_operator(actor)
    steps = proposal.call.call_type.review_steps
    if "scientific" not in steps:
        raise Conflict(f"call type {proposal.call.call_type.key!r} has no scientific step "
                       f"(its steps: {', '.join(steps)}); it needs no reviewers",
                       field="reviewer", hint="Record the operators' checks and decide.")
    if due_on is None:
        due_on = add_working_days(now.date(), RESPONSE_WORKING_DAYS, holidays)
    elif due_on < now.date():
        raise InvalidInput(f"due_on {due_on} is in the past", field="due_on",
                           hint=f"Give {now.date()} or later.")
    user = get_user(session, reviewer)
    if not user.is_reviewer:
        raise InvalidInput(f"user {user.username!r} is not a reviewer", field="reviewer",
                           hint="Pick a user with the reviewer role.")
    coi = conflict_of_interest(session, user, proposal)
    if coi is not None:
        raise Conflict(
            f"conflict of interest: {coi.sentence(user.username)}", field="reviewer",
            hint="Assign a reviewer from another organisation." if coi.kind == "organisation"
            else "Assign a reviewer from outside the project.")
    if assigned_review(session, user, proposal) is not None:
        raise Conflict(f"{user.username!r} is already assigned to proposal {proposal.id}",
                       field="reviewer")
    if proposal.state == ProposalState.SUBMITTED.value:
        transition(session, actor, proposal, ProposalState.UNDER_REVIEW, now,
                   {"reviewer": user.username})
    elif proposal.state != ProposalState.UNDER_REVIEW.value:
        raise InvalidTransition(
            f"proposal {proposal.id} is {proposal.state}; reviewers are assigned to "
            "submitted proposals", field="state",
            hint="Ask the PI to submit it first." if proposal.state == "draft" else None)
    else:
        record(session, actor, "proposal.assign_reviewer", "proposal", proposal.id,
               {"reviewer": user.username, "due_on": due_on.isoformat()}, at=now)
    review = Review(proposal_id=proposal.id, reviewer_user_id=user.id, reviewer=user,
                    assigned_at=now, invited_at=now, due_on=due_on, decline_reason="")
    session.add(review)
    session.flush()
    return review


def _own_open_review(session: Session, actor: User, proposal: Proposal) -> Review:
    """``actor``'s review of a proposal that still wants it (not withdrawn, not decided)."""
    review = assigned_review(session, actor, proposal)
    if review is None:
        if can_see_project(session, actor, proposal.project_id):
            raise PermissionDenied(f"you are not assigned to review proposal {proposal.id}",
                                   field="proposal")
        raise NotFound(f"proposal {proposal.id} not found", field="proposal")
    if proposal.state == ProposalState.WITHDRAWN.value:
        raise InvalidTransition(
            f"proposal {proposal.id} was withdrawn"
            + (f" on {proposal.withdrawn_at:%Y-%m-%d}" if proposal.withdrawn_at else "")
            + "; its review is no longer requested", field="state",
            hint="Nothing to do: the proposal left your assigned reviews.")
    return review


def _refuse_conflict(session: Session, actor: User, proposal: Proposal, doing: str) -> None:
    coi = conflict_of_interest(session, actor, proposal)
    if coi is not None:
        raise Conflict(
            f"conflict of interest: {coi.sentence()}; you may not {doing} proposal "
            f"{proposal.id} any more", field="proposal",
            hint=f"Decline the review: ask an operator to reassign proposal {proposal.id} "
            "to another reviewer.")


def respond_to_invitation(session: Session, actor: User, proposal: Proposal, *,
                          accept: bool, now: datetime, reason: str = "") -> Review:
    """The invited reviewer accepts (no conflict of interest now, before ``due_on`` has
    passed) or declines with a reason. Answered once."""
    review = _own_open_review(session, actor, proposal)
    reason = reason.strip()
    if review.accepted is not None:
        raise Conflict(f"you already {'accepted' if review.accepted else 'declined'} the "
                       f"invitation to review proposal {proposal.id}", field="accept")
    if proposal.state not in (ProposalState.SUBMITTED.value,
                              ProposalState.UNDER_REVIEW.value):
        raise InvalidTransition(f"proposal {proposal.id} is {proposal.state}; its review is "
                                "no longer requested", field="state")
    if not accept and not reason:
        raise InvalidInput("reason: say why you decline", field="reason",
                           hint="E.g. no time before the deadline, or a conflict of "
                                "interest the centre does not know of.")
    if accept:
        _refuse_conflict(session, actor, proposal, "review")
        if review.due_on is not None and now.date() > review.due_on:
            raise Conflict(f"the invitation to review proposal {proposal.id} was to be "
                           f"answered by {review.due_on}", field="accept",
                           hint="Ask an operator to invite you again.")
    review.accepted = accept
    review.responded_at = now
    review.decline_reason = "" if accept else reason
    record(session, actor, "proposal.review_accepted" if accept else
           "proposal.review_declined", "proposal", proposal.id,
           {"reviewer": actor.username, **({} if accept else {"reason": reason})}, at=now)
    return review


def submit_review(
    session: Session, actor: User, proposal: Proposal, *, technical_score: int,
    scientific_score: int, now: datetime, comment: str = "",
) -> Review:
    review = _own_open_review(session, actor, proposal)
    _refuse_conflict(session, actor, proposal, "review")
    if review.accepted is not True:
        raise Conflict(
            f"you declined the invitation to review proposal {proposal.id}"
            if review.accepted is False else
            f"accept the invitation to review proposal {proposal.id} first",
            field="proposal", hint=None if review.accepted is False else
            f"`rechenwerk proposal accept-review {proposal.id}` or the Reviews page.")
    raise_issues(
        FieldIssue((name,), f"must be an integer {MIN_SCORE}..{MAX_SCORE}, got {value}")
        for name, value in (("technical_score", technical_score),
                            ("scientific_score", scientific_score))
        if not (MIN_SCORE <= value <= MAX_SCORE)
    )
    if proposal.state != ProposalState.UNDER_REVIEW.value:
        raise InvalidTransition(f"proposal {proposal.id} is {proposal.state}, not under review",
                                field="state")
    if review.submitted_at is not None:
        raise Conflict(f"you already reviewed proposal {proposal.id}", field="proposal")
    review.technical_score = technical_score
    review.scientific_score = scientific_score
    review.comment = comment
    review.submitted_at = now
    record(session, actor, "proposal.review", "proposal", proposal.id,
           {"reviewer": actor.username, "technical_score": technical_score,
            "scientific_score": scientific_score}, at=now)
    return review


def list_reviews(session: Session, user: User, proposal: Proposal) -> list[Review]:
    """Operators see all reviews; a reviewer sees their own; project members see submitted
    reviews once the proposal is decided, or from the right-to-reply step on (the caller
    hides reviewer names from them)."""
    stmt = select(Review).where(Review.proposal_id == proposal.id).order_by(Review.id)
    if user.is_operator:
        return list(session.scalars(stmt))
    own = assigned_review(session, user, proposal)
    if own is not None:
        return [own]
    decided = proposal.state in (ProposalState.ACCEPTED.value, ProposalState.REJECTED.value)
    replying = (proposal.state == ProposalState.UNDER_REVIEW.value
                and "right_to_reply" in steps_of(proposal)
                and reply_due(session, proposal) is not None)
    if (decided or replying) and membership(session, user, proposal.project) is not None:
        return list(session.scalars(stmt.where(Review.submitted_at.is_not(None))))
    return []
