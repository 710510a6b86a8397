"""The decision (review pipeline step 5): granted GPU-hours (partial allowed, at most the
request) and the decision letter from its template: the reviewers' comments numbered,
never named; a failed check's note on an early rejection. Both databases."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from factories import (
    T0,
    accept_invitation,
    confirm_call_ranking,
    make_call,
    make_org,
    make_project,
    make_user,
    pass_checks,
    reply_to_reviews,
)
from rechenwerk.access.decision_letter import ReviewComment, render_letter
from rechenwerk.access.models import Proposal, User
from rechenwerk.access.proposals import create_proposal, decide_proposal, submit_proposal
from rechenwerk.access.review_pipeline import record_assessment
from rechenwerk.access.reviews import assign_reviewer, submit_review
from rechenwerk.errors import InvalidInput


def _submitted(session: Session) -> tuple[Proposal, User]:
    op = make_user(session, operator=True)
    pi = make_user(session, org=make_org(session, kind="university"))
    p = create_proposal(session, pi, call=make_call(session, slug="res-2026"),
                        project=make_project(session, pi=pi, slug="climate"),
                        title="Rain nowcasting", gpu_type="A100-80GB",
                        requested_gpu_hours=20_000, now=T0)
    submit_proposal(session, pi, p, now=T0)
    return p, op


def test_a_partial_award_and_its_letter(session: Session) -> None:
    p, op = _submitted(session)
    pass_checks(session, op, p)
    rev = make_user(session, username="secret-reviewer", reviewer=True)
    assign_reviewer(session, op, p, reviewer=rev.username, now=T0)
    accept_invitation(session, rev, p)
    submit_review(session, rev, p, technical_score=4, scientific_score=3,
                  comment="Halve the ensemble.", now=T0)
    reply_to_reviews(session, p)
    confirm_call_ranking(session, op, p)
    for granted in (0.0, 25_000.0):
        with pytest.raises(InvalidInput) as bad:
            decide_proposal(session, op, p, decision="accepted", now=T0,
                            granted_gpu_hours=granted)
        assert bad.value.field == "granted_gpu_hours"
    assert p.state == "under_review" and p.decision_letter is None  # nothing written
    with pytest.raises(InvalidInput, match="grants nothing"):
        decide_proposal(session, op, p, decision="rejected", now=T0, granted_gpu_hours=5)
    decide_proposal(session, op, p, decision="accepted", now=T0, granted_gpu_hours=12_000,
                    comment="Start with the smaller ensemble.")
    assert p.granted_gpu_hours == 12_000
    letter = p.decision_letter or ""
    assert "Decision on proposal" in letter and "Rain nowcasting" in letter
    assert "Granted: 12,000 of the 20,000 GPU-hours requested (a partial award, 60%" in letter
    assert "- Reviewer 1 (technical 4/5, scientific 3/5): Halve the ensemble." in letter
    assert "secret-reviewer" not in letter
    assert "Start with the smaller ensemble." in letter


def test_an_early_rejection_letter_names_the_failed_check(session: Session) -> None:
    p, op = _submitted(session)
    record_assessment(session, op, p, step="eligibility", outcome="fail",
                      note="the organisation is outside the EU", now=T0)
    decide_proposal(session, op, p, decision="rejected", now=T0)
    assert p.granted_gpu_hours is None
    letter = p.decision_letter or ""
    assert "No GPU-hours are granted (20,000 were requested)" in letter
    assert "eligibility: the organisation is outside the EU" in letter
    assert "- none" in letter and "Note from the centre:\nnone" in letter


def test_full_grant_wording() -> None:
    text = render_letter(proposal_id=1, title="t", project="p", organization="o", call="c",
                         decision="accepted", requested_gpu_hours=100.0,
                         granted_gpu_hours=100.0,
                         reviews=[ReviewComment(None, None, "")], note="")
    assert "Granted: 100 of the 100 GPU-hours requested (in full)." in text
    assert "- Reviewer 1: no comment" in text
