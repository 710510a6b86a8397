"""The proposal life cycle as an explicit table, and the one function that moves a
proposal along it (and audits the move). Used by proposals (submit, withdraw, decide)
and reviews (the first assignment starts the review)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from rechenwerk.access.audit import record
from rechenwerk.access.models import Proposal, ProposalState, User
from rechenwerk.errors import InvalidTransition

# state -> states it may move to
PROPOSAL_TRANSITIONS: dict[ProposalState, frozenset[ProposalState]] = {
    ProposalState.DRAFT: frozenset({ProposalState.SUBMITTED, ProposalState.WITHDRAWN}),
    ProposalState.SUBMITTED: frozenset({ProposalState.UNDER_REVIEW, ProposalState.REJECTED,
                                        ProposalState.WITHDRAWN}),
    ProposalState.UNDER_REVIEW: frozenset({ProposalState.ACCEPTED, ProposalState.REJECTED,
                                           ProposalState.WITHDRAWN}),
    ProposalState.ACCEPTED: frozenset(),
    ProposalState.REJECTED: frozenset(),
    ProposalState.WITHDRAWN: frozenset(),
}


def transition(session: Session, actor: User, proposal: Proposal, to: ProposalState,
               now: datetime, extra: Mapping[str, Any] | None = None) -> None:
    current = ProposalState(proposal.state)
    if to not in PROPOSAL_TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in PROPOSAL_TRANSITIONS[current])) or "none"
        raise InvalidTransition(
            f"proposal {proposal.id} cannot move from {current.value} to {to.value}",
            field="state",
            hint=f"From {current.value} it may move to: {allowed}.",
        )
    proposal.state = to.value
    record(session, actor, f"proposal.{to.value}", "proposal", proposal.id,
           {"state": [current.value, to.value], **(extra or {})}, at=now)


# Proposals whose decision can be overdue (``due_on`` passed, not decided yet).
OPEN_STATES = (ProposalState.SUBMITTED.value, ProposalState.UNDER_REVIEW.value)


def is_overdue(proposal: Proposal, today: date) -> bool:
    """The decision was due before ``today`` and has not been taken."""
    return (proposal.due_on is not None and proposal.state in OPEN_STATES
            and proposal.due_on < today)
