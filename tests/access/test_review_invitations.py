"""The scientific step (review pipeline step 2): the assignment is an invitation with a
date to answer by; the reviewer accepts or declines with a reason; only accepted reviewers
submit; the conflict of interest is checked again at accepting; the call type's
``min_reviews`` submitted reviews complete the step. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy.orm import Session

from factories import (
    T0,
    confirm_call_ranking,
    make_call,
    make_org,
    make_project,
    make_user,
    pass_checks,
    reply_to_reviews,
)
from rechenwerk.access.call_type_rules import EUROHPC_TYPES, CallTypeSpec, spec_issues
from rechenwerk.access.call_types import create_call_type, ensure_call_types
from rechenwerk.access.models import ProjectMembership, Proposal, User
from rechenwerk.access.proposals import create_proposal, decide_proposal, submit_proposal
from rechenwerk.access.review_pipeline import current_step, pipeline
from rechenwerk.access.reviews import assign_reviewer, respond_to_invitation, submit_review
from rechenwerk.errors import Conflict, InvalidInput


def _world(session: Session, spec: CallTypeSpec | None = None,
           ) -> tuple[Proposal, User, list[User]]:
    op = make_user(session, operator=True)
    uni = make_org(session, kind="university")
    pi = make_user(session, org=uni)
    ctype = (create_call_type(session, op, spec, now=T0) if spec is not None else
             make_call(session).call_type)
    call = make_call(session, call_type=ctype)
    p = create_proposal(session, pi, call=call, project=make_project(session, pi=pi),
                        title="t", gpu_type="A100-80GB", requested_gpu_hours=100,
                        duration_months=12 if ctype.duration_months else None, now=T0)
    submit_proposal(session, pi, p, now=T0)
    reviewers = [make_user(session, reviewer=True) for _ in range(3)]
    return p, op, reviewers


def test_invitation_accept_decline_and_deadline(session: Session) -> None:
    p, op, (ann, bob, cem) = _world(session)
    review = assign_reviewer(session, op, p, reviewer=ann.username, now=T0)
    # 2026-01-01 is a Thursday: five working days later is Thursday 8 January
    assert review.accepted is None and review.due_on == date(2026, 1, 8)
    assert review.invited_at == T0
    with pytest.raises(InvalidInput) as past:
        assign_reviewer(session, op, p, reviewer=bob.username, now=T0,
                        due_on=date(2025, 12, 31))
    assert past.value.field == "due_on"
    with pytest.raises(Conflict, match="accept the invitation"):
        submit_review(session, ann, p, technical_score=4, scientific_score=4, now=T0)
    with pytest.raises(InvalidInput) as no_reason:
        respond_to_invitation(session, ann, p, accept=False, reason=" ", now=T0)
    assert no_reason.value.field == "reason" and review.accepted is None
    respond_to_invitation(session, ann, p, accept=False, reason="on leave", now=T0)
    assert (review.accepted, review.decline_reason) == (False, "on leave")
    with pytest.raises(Conflict, match="already declined"):
        respond_to_invitation(session, ann, p, accept=True, now=T0)
    with pytest.raises(Conflict, match="declined"):
        submit_review(session, ann, p, technical_score=4, scientific_score=4, now=T0)
    late = assign_reviewer(session, op, p, reviewer=bob.username, now=T0,
                           due_on=date(2026, 1, 2))
    with pytest.raises(Conflict) as too_late:
        respond_to_invitation(session, bob, p, accept=True, now=T0 + timedelta(days=3))
    assert "answered by 2026-01-02" in too_late.value.message and late.accepted is None
    assign_reviewer(session, op, p, reviewer=cem.username, now=T0)
    respond_to_invitation(session, cem, p, accept=True, now=T0)
    submit_review(session, cem, p, technical_score=5, scientific_score=4, now=T0)
    pass_checks(session, op, p)
    reply_to_reviews(session, p)
    confirm_call_ranking(session, op, p)
    decide_proposal(session, op, p, decision="accepted", now=T0)
    assert p.state == "accepted"


def test_conflict_of_interest_is_checked_again_at_accepting(session: Session) -> None:
    p, op, (ann, _, _) = _world(session)
    assign_reviewer(session, op, p, reviewer=ann.username, now=T0)
    session.add(ProjectMembership(project_id=p.project_id, user_id=ann.id, role="member",
                                  created_at=T0))
    session.flush()
    with pytest.raises(Conflict) as coi:
        respond_to_invitation(session, ann, p, accept=True, now=T0)
    assert "conflict of interest" in coi.value.message and coi.value.field == "proposal"
    respond_to_invitation(session, ann, p, accept=False, reason="I joined the project",
                          now=T0)  # declining is always possible


def test_min_reviews_of_the_call_type(session: Session) -> None:
    spec = CallTypeSpec("peer-2", "Two reviews", duration_months=(),
                        review_steps=("eligibility", "technical", "scientific", "decision"),
                        min_reviews=2)
    p, op, (ann, bob, _) = _world(session, spec)
    pass_checks(session, op, p)
    for reviewer in (ann, bob):
        assign_reviewer(session, op, p, reviewer=reviewer.username, now=T0)
        respond_to_invitation(session, reviewer, p, accept=True, now=T0)
    submit_review(session, ann, p, technical_score=4, scientific_score=4, now=T0)
    assert current_step(session, p) == "scientific"
    assert pipeline(session, p)[2].detail == "1 of 2 review(s) submitted"
    with pytest.raises(Conflict, match="scientific step"):
        decide_proposal(session, op, p, decision="accepted", now=T0)
    submit_review(session, bob, p, technical_score=3, scientific_score=5, now=T0)
    assert current_step(session, p) == "decision"
    assert [i.loc for i in spec_issues(CallTypeSpec("x1", "x", min_reviews=0))] == [
        ("min_reviews",)]


def test_types_without_a_scientific_step_take_no_reviewers(session: Session) -> None:
    op = make_user(session, operator=True)
    pi = make_user(session, org=make_org(session, kind="sme"))
    playground = {t.key: t for t in ensure_call_types(session, None, EUROHPC_TYPES,
                                                      now=T0)}["playground"]
    assert playground.min_reviews == 1
    call = make_call(session, call_type=playground, eligible_kinds=["sme"])
    p = create_proposal(session, pi, call=call, project=make_project(session, pi=pi),
                        title="t", gpu_type="A100-80GB", requested_gpu_hours=10,
                        duration_months=1, now=T0)
    submit_proposal(session, pi, p, now=T0)
    with pytest.raises(Conflict) as exc:
        assign_reviewer(session, op, p, reviewer=make_user(session, reviewer=True).username,
                        now=T0)
    assert exc.value.field == "reviewer" and "has no scientific step" in exc.value.message
