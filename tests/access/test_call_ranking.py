"""The ranking (review pipeline step 4): per call, the proposals that completed the
earlier steps ranked by mean score (tie: earlier submission) against the call's budget:
in full while it lasts, the remainder for the first that does not fit, 0 after; an
operator's confirmation completes the step. Both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from factories import (
    T0,
    accept_invitation,
    make_call,
    make_org,
    make_project,
    make_user,
    pass_checks,
    reply_to_reviews,
)
from rechenwerk.access.calls import create_call
from rechenwerk.access.models import Call, Proposal, User
from rechenwerk.access.proposals import create_proposal, decide_proposal, submit_proposal
from rechenwerk.access.review_pipeline import call_ranking, confirm_ranking, current_step
from rechenwerk.access.reviews import assign_reviewer, submit_review
from rechenwerk.errors import Conflict, InvalidInput, PermissionDenied


def _ready(session: Session, op: User, call: Call, rev: User, hours: float,
           scores: tuple[int, int], minute: int) -> Proposal:
    pi = make_user(session, org=make_org(session, kind="university"))
    p = create_proposal(session, pi, call=call, project=make_project(session, pi=pi),
                        title=f"p{minute}", gpu_type="A100-80GB", requested_gpu_hours=hours,
                        now=T0)
    submit_proposal(session, pi, p, now=T0 + timedelta(minutes=minute))
    pass_checks(session, op, p)
    assign_reviewer(session, op, p, reviewer=rev.username, now=T0)
    accept_invitation(session, rev, p)
    submit_review(session, rev, p, technical_score=scores[0], scientific_score=scores[1],
                  now=T0)
    reply_to_reviews(session, p)
    assert current_step(session, p) == "ranking"
    return p


def test_ranking_against_the_budget(session: Session) -> None:
    op = make_user(session, operator=True)
    rev = make_user(session, reviewer=True)
    with pytest.raises(InvalidInput) as bad:
        create_call(session, op, slug="bad", title="t", access_mode="research", opens_at=T0,
                    closes_at=T0 + timedelta(days=9), now=T0, budget_gpu_hours=-1)
    assert bad.value.field == "budget_gpu_hours"
    call = create_call(session, op, slug="res", title="t", access_mode="research",
                       opens_at=T0 - timedelta(days=1), closes_at=T0 + timedelta(days=90),
                       now=T0, budget_gpu_hours=25_000)
    with pytest.raises(Conflict) as none:
        confirm_ranking(session, op, call, now=T0)
    assert none.value.field == "call"
    third = _ready(session, op, call, rev, 10_000, (3, 3), 1)
    tie_late = _ready(session, op, call, rev, 8_000, (5, 4), 3)
    best = _ready(session, op, call, rev, 12_000, (5, 5), 2)
    tie_early = _ready(session, op, call, rev, 10_000, (4, 5), 0)
    rows = call_ranking(session, call)
    assert [(r.proposal.id, r.mean_score, r.cumulative_gpu_hours, r.recommended_gpu_hours)
            for r in rows] == [
        (best.id, 5.0, 12_000, 12_000), (tie_early.id, 4.5, 22_000, 10_000),
        (tie_late.id, 4.5, 30_000, 3_000), (third.id, 3.0, 40_000, 0)]
    with pytest.raises(PermissionDenied):
        confirm_ranking(session, best.applicant, call, now=T0)
    with pytest.raises(Conflict, match="ranking step"):
        decide_proposal(session, op, tie_late, decision="accepted", now=T0)
    confirm_ranking(session, op, call, now=T0)
    assert (tie_late.recommended_gpu_hours, current_step(session, tie_late)) == (
        3_000, "decision")
    assert call_ranking(session, call) == []
    decide_proposal(session, op, tie_late, decision="accepted", now=T0,
                    granted_gpu_hours=tie_late.recommended_gpu_hours)
    assert "partial award" in (tie_late.decision_letter or "")


def test_no_budget_recommends_every_request(session: Session) -> None:
    op = make_user(session, operator=True)
    rev = make_user(session, reviewer=True)
    call = make_call(session)
    p = _ready(session, op, call, rev, 500, (4, 4), 0)
    assert [r.recommended_gpu_hours for r in call_ranking(session, call)] == [500]
    assert p.ranked_at is None
