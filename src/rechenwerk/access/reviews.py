"""Reviews of proposals: operators assign reviewers (no conflict of interest), assigned
reviewers score a proposal under review (still no conflict of interest: a reviewer who
joined the project or the applicant's organisation since is refused), and who sees which
review."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.access.audit import record
from rechenwerk.access.models import Proposal, ProposalState, Review, User
from rechenwerk.access.projects import membership
from rechenwerk.access.proposal_states import transition
from rechenwerk.access.security import require_operator
from rechenwerk.access.users import get_user
from rechenwerk.access.visibility import can_see_project
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
                    now: datetime) -> Review:
    """Assign a reviewer (operators). Refuses non-reviewers and reviewers from the
    applicant's organisation (conflict of interest). The first assignment moves the
    proposal from submitted to under_review."""
    require_operator(actor)
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
               {"reviewer": user.username}, at=now)
    review = Review(proposal_id=proposal.id, reviewer_user_id=user.id, reviewer=user,
                    assigned_at=now)
    session.add(review)
    session.flush()
    return review


def submit_review(
    session: Session, actor: User, proposal: Proposal, *, technical_score: int,
    scientific_score: int, now: datetime, comment: str = "",
) -> Review:
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
    coi = conflict_of_interest(session, actor, proposal)
    if coi is not None:
        raise Conflict(
            f"conflict of interest: {coi.sentence()}; you may not review proposal "
            f"{proposal.id} any more", field="proposal",
            hint=f"Decline the review: ask an operator to reassign proposal {proposal.id} "
            "to another reviewer.")
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
    reviews once the proposal is decided (the caller hides reviewer names from them)."""
    stmt = select(Review).where(Review.proposal_id == proposal.id).order_by(Review.id)
    if user.is_operator:
        return list(session.scalars(stmt))
    own = assigned_review(session, user, proposal)
    if own is not None:
        return [own]
    decided = proposal.state in (ProposalState.ACCEPTED.value, ProposalState.REJECTED.value)
    if decided and membership(session, user, proposal.project) is not None:
        return list(session.scalars(stmt.where(Review.submitted_at.is_not(None))))
    return []
