"""The review pipeline, step 1: the call type's steps as data on the proposal, the
operators' eligibility check and technical assessment, and decisions refused before the
steps before ``decision`` are done (naming the step). Playground skips the scientific
steps; large-scale runs every step. SQLite and PostgreSQL (the ``session`` fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from factories import T0, accept_invitation, make_call, make_org, make_project, make_user
from rechenwerk.access.call_type_rules import EUROHPC_TYPES
from rechenwerk.access.call_types import ensure_call_types, type_for_access_mode
from rechenwerk.access.models import Proposal, ProposalAssessment, User
from rechenwerk.access.proposals import create_proposal, decide_proposal, submit_proposal
from rechenwerk.access.review_pipeline import (
    confirm_ranking,
    current_step,
    pipeline,
    record_assessment,
    submit_reply,
)
from rechenwerk.access.reviews import assign_reviewer, submit_review
from rechenwerk.errors import Conflict, InvalidInput, InvalidTransition, PermissionDenied
from rechenwerk.store.migrate import downgrade, upgrade
from rechenwerk.store.session import make_engine


def _proposal(session: Session, type_key: str, hours: float = 500,
              months: int | None = 3) -> tuple[Proposal, User, User]:
    op = make_user(session, operator=True)
    sme = make_org(session, kind="sme", country="DE")
    pi = make_user(session, org=sme)
    project = make_project(session, pi=pi)
    ctype = {t.key: t for t in ensure_call_types(session, None, EUROHPC_TYPES, now=T0)}[
        type_key]
    call = make_call(session, call_type=ctype, eligible_kinds=["sme"])
    p = create_proposal(session, pi, call=call, project=project, title="t",
                        gpu_type="A100-80GB", requested_gpu_hours=hours,
                        duration_months=months, now=T0)
    submit_proposal(session, pi, p, now=T0)
    return p, op, pi


def _count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ProposalAssessment)) or 0


def test_playground_goes_from_technical_straight_to_decision(session: Session) -> None:
    p, op, _ = _proposal(session, "playground")
    assert [st.step for st in pipeline(session, p)] == ["eligibility", "technical",
                                                        "decision"]
    assert current_step(session, p) == "eligibility"
    with pytest.raises(Conflict) as early:
        decide_proposal(session, op, p, decision="accepted", now=T0)
    assert early.value.field == "decision" and "eligibility step" in early.value.message
    with pytest.raises(Conflict) as order:  # technical comes after eligibility
        record_assessment(session, op, p, step="technical", outcome="pass", now=T0)
    assert order.value.field == "step" and "comes later" in order.value.message
    record_assessment(session, op, p, step="eligibility", outcome="pass", now=T0)
    assert p.state == "under_review" and current_step(session, p) == "technical"
    with pytest.raises(Conflict, match="technical step"):
        decide_proposal(session, op, p, decision="accepted", now=T0)
    with pytest.raises(Conflict, match="already done"):
        record_assessment(session, op, p, step="eligibility", outcome="fail", note="x",
                          now=T0)
    record_assessment(session, op, p, step="technical", outcome="pass", note="fits", now=T0)
    assert current_step(session, p) == "decision"
    decide_proposal(session, op, p, decision="accepted", now=T0)  # no reviewer needed
    assert p.state == "accepted" and current_step(session, p) is None
    with pytest.raises(InvalidTransition):
        record_assessment(session, op, p, step="technical", outcome="pass", now=T0)


def test_a_failed_check_lets_the_operator_reject(session: Session) -> None:
    p, op, pi = _proposal(session, "fast-lane")
    with pytest.raises(InvalidInput) as no_note:
        record_assessment(session, op, p, step="eligibility", outcome="fail", note="  ",
                          now=T0)
    assert no_note.value.field == "note" and _count(session) == 0 and p.state == "submitted"
    with pytest.raises(InvalidInput) as bad:
        record_assessment(session, op, p, step="eligibility", outcome="maybe", now=T0)
    assert bad.value.field == "outcome"
    with pytest.raises(InvalidInput) as step:
        record_assessment(session, op, p, step="scientific", outcome="pass", now=T0)
    assert step.value.field == "step"
    with pytest.raises(PermissionDenied):
        record_assessment(session, pi, p, step="eligibility", outcome="pass", now=T0)
    assert _count(session) == 0
    record_assessment(session, op, p, step="eligibility", outcome="pass", now=T0)
    record_assessment(session, op, p, step="technical", outcome="fail",
                      note="the code does not run on GPUs", now=T0)
    assert current_step(session, p) == "technical"
    assert "does not run on GPUs" in pipeline(session, p)[1].detail
    with pytest.raises(Conflict, match="technical step"):
        decide_proposal(session, op, p, decision="accepted", now=T0)
    decide_proposal(session, op, p, decision="rejected", comment="not GPU-ready", now=T0)
    assert p.state == "rejected"


def test_a_failed_check_may_be_assessed_again(session: Session) -> None:
    p, op, _ = _proposal(session, "fast-lane")
    record_assessment(session, op, p, step="eligibility", outcome="fail", note="no VAT id",
                      now=T0)
    record_assessment(session, op, p, step="eligibility", outcome="pass",
                      note="VAT id sent", now=T0)
    assert current_step(session, p) == "technical"


def test_steps_the_type_does_not_list_are_refused(session: Session) -> None:
    op = make_user(session, operator=True)
    sme = make_org(session, kind="sme")
    pi = make_user(session, org=sme)
    call = make_call(session, access_mode="pay_per_use", eligible_kinds=["sme"])
    assert type_for_access_mode(session, "pay_per_use", actor=None, now=T0).review_steps == [
        "eligibility", "decision"]
    p = create_proposal(session, pi, call=call, project=make_project(session, pi=pi),
                        title="t", gpu_type="A100-80GB", requested_gpu_hours=10, now=T0)
    submit_proposal(session, pi, p, now=T0)
    with pytest.raises(Conflict) as exc:
        record_assessment(session, op, p, step="technical", outcome="pass", now=T0)
    assert exc.value.field == "step" and "has no technical step" in exc.value.message
    record_assessment(session, op, p, step="eligibility", outcome="pass", now=T0)
    assert current_step(session, p) == "decision"


def test_large_scale_runs_every_step(session: Session) -> None:
    p, op, _ = _proposal(session, "large-scale", hours=60_000, months=6)
    assert [st.step for st in pipeline(session, p)] == [
        "eligibility", "technical", "scientific", "right_to_reply", "ranking", "decision"]
    reviewer = make_user(session, reviewer=True)
    record_assessment(session, op, p, step="eligibility", outcome="pass", now=T0)
    record_assessment(session, op, p, step="technical", outcome="pass", now=T0)
    assert current_step(session, p) == "scientific"
    with pytest.raises(Conflict, match="scientific step"):
        decide_proposal(session, op, p, decision="accepted", now=T0)
    assign_reviewer(session, op, p, reviewer=reviewer.username, now=T0)
    accept_invitation(session, reviewer, p)
    submit_review(session, reviewer, p, technical_score=4, scientific_score=5, now=T0)
    assert current_step(session, p) == "right_to_reply"
    submit_reply(session, p.project.pi, p, text="Thanks.", now=T0)
    assert current_step(session, p) == "ranking"
    confirm_ranking(session, op, p.call, now=T0)
    assert current_step(session, p) == "decision"
    decide_proposal(session, op, p, decision="accepted", now=T0, granted_gpu_hours=55_000)
    assert p.state == "accepted" and all(st.done for st in pipeline(session, p))


def test_migration_implies_the_checks_of_proposals_under_review(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "0023_award_changes")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO organizations (id, name, kind, country, created_at) VALUES "
                "(1, 'O', 'sme', 'DE', '2026-01-01 00:00:00')"))
            conn.execute(text(
                "INSERT INTO users (id, username, email, full_name, organization_id, "
                "is_operator, is_reviewer, is_active, created_at) VALUES (1, 'pi', "
                "'p@x.eu', '', 1, 0, 0, 1, '2026-01-01 00:00:00')"))
            conn.execute(text(
                "INSERT INTO projects (id, slug, title, description, organization_id, "
                "pi_user_id, created_at) VALUES (1, 'alpha', 't', '', 1, 1, "
                "'2026-01-01 00:00:00')"))
            type_id = conn.execute(text(
                "SELECT id FROM call_types WHERE key = 'fast_lane'")).scalar()
            conn.execute(text(
                "INSERT INTO calls (id, slug, title, description, access_mode, "
                "eligible_kinds, opens_at, closes_at, created_at, call_type_id) VALUES "
                "(1, 'c', 't', '', 'fast_lane', '[\"sme\"]', '2026-01-01 00:00:00', "
                "'2026-03-01 00:00:00', '2026-01-01 00:00:00', :t)"), {"t": type_id})
            for pid, state in ((1, "under_review"), (2, "submitted"), (3, "accepted")):
                conn.execute(text(
                    "INSERT INTO proposals (id, call_id, project_id, applicant_user_id, "
                    "title, abstract, justification, gpu_type, requested_gpu_hours, state, "
                    "decision_comment, created_at) VALUES (:id, 1, 1, 1, 't', '', '', "
                    "'A100-80GB', 10, :s, '', '2026-01-01 00:00:00')"),
                    {"id": pid, "s": state})
            conn.execute(text(
                "INSERT INTO reviews (proposal_id, reviewer_user_id, assigned_at, comment) "
                "VALUES (1, 1, '2026-01-02 00:00:00', '')"))
        upgrade(url)
        with engine.connect() as conn:
            review = conn.execute(text(
                "SELECT accepted, invited_at = assigned_at, responded_at = assigned_at, "
                "decline_reason FROM reviews")).one()
            assert tuple(review) == (1, 1, 1, "")  # reviews from before count as accepted
            assert set(conn.execute(text(
                "SELECT DISTINCT min_reviews FROM call_types")).scalars()) == {1}
            rows = conn.execute(text(
                "SELECT proposal_id, step, outcome, by_user_id FROM proposal_assessments "
                "ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(1, "eligibility", "pass", None),
                                            (1, "technical", "pass", None)]
        downgrade(url, "0023_award_changes")
        with engine.connect() as conn:
            assert conn.execute(text(
                "SELECT count(*) FROM sqlite_master WHERE name = 'proposal_assessments'"
            )).scalar() == 0
    finally:
        engine.dispose()
