"""Editing drafts and withdrawing proposals (access service), on SQLite and PostgreSQL:
who may, in which states, the same validation as create, audit entries with old and new
values, the terminal ``withdrawn`` state, reviews refused after a withdrawal and the
reviewers' notification."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
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
from rechenwerk.access.models import AuditEntry, Proposal, ProposalState
from rechenwerk.access.proposals import (
    create_proposal,
    decide_proposal,
    list_proposals,
    submit_proposal,
    update_proposal,
    withdraw_proposal,
)
from rechenwerk.access.reviews import assign_reviewer, submit_review
from rechenwerk.errors import (
    Conflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
)
from rechenwerk.notifications import service as notify
from rechenwerk.notifications.models import OutboxMessage

LATER = T0 + timedelta(hours=1)


@pytest.fixture
def w(session: Session) -> dict[str, Any]:
    sme = make_org(session, kind="sme")
    uni = make_org(session, kind="university")
    pi = make_user(session, username="pia", org=sme)
    member = make_user(session, username="mem", org=sme)
    op = make_user(session, username="op", org=uni, operator=True)
    rev = make_user(session, username="rev", org=uni, reviewer=True)
    rev2 = make_user(session, username="rev2", org=uni, reviewer=True)
    outsider = make_user(session, username="out", org=uni)
    project = make_project(session, pi=pi, members={member: "member"})
    call = make_call(session, access_mode="innovation", max_gpu_hours=1000)
    return {"pi": pi, "member": member, "op": op, "rev": rev, "rev2": rev2,
            "outsider": outsider, "project": project, "call": call}


def _draft(session: Session, w: dict[str, Any], **kw: Any) -> Proposal:
    args: dict[str, Any] = {"title": "Pre-training", "gpu_type": "A100-80GB",
                            "requested_gpu_hours": 500, "abstract": "a", "justification": "j"}
    args.update(kw)
    return create_proposal(session, w["pi"], call=w["call"], project=w["project"],
                           now=T0, **args)


def _in_state(session: Session, w: dict[str, Any], state: str) -> Proposal:
    p = _draft(session, w)
    if state == "draft":
        return p
    submit_proposal(session, w["pi"], p, now=T0)
    if state == "submitted":
        return p
    assign_reviewer(session, w["op"], p, reviewer="rev", now=T0)
    accept_invitation(session, w["rev"], p)
    if state == "under_review":
        return p
    pass_checks(session, w["op"], p)
    submit_review(session, w["rev"], p, technical_score=4, scientific_score=4, now=T0)
    reply_to_reviews(session, p)
    confirm_call_ranking(session, w["op"], p)
    decide_proposal(session, w["op"], p, decision=state, now=T0)
    return p


def _audit(session: Session, p: Proposal, action: str) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).where(
        AuditEntry.entity == "proposal", AuditEntry.entity_id == str(p.id),
        AuditEntry.action == action).order_by(AuditEntry.id)))


def test_pi_edits_a_draft_and_each_change_is_audited(session: Session,
                                                     w: dict[str, Any]) -> None:
    p = _draft(session, w)
    update_proposal(session, w["pi"], p, title="  Continued pre-training ",
                    gpu_type="h100", requested_gpu_hours=750, abstract="a", now=LATER)
    assert (p.title, p.gpu_type, p.requested_gpu_hours) == (
        "Continued pre-training", "H100-SXM", 750.0)  # trimmed, alias made canonical
    (entry,) = _audit(session, p, "proposal.update")
    # only what changed, as [old, new]; the unchanged abstract is not listed
    assert entry.changes == {"title": ["Pre-training", "Continued pre-training"],
                             "gpu_type": ["A100-80GB", "H100-SXM"],
                             "requested_gpu_hours": [500.0, 750.0]}
    assert entry.actor == "pia" and entry.at == LATER
    # an operator may edit too; a no-op edit writes no audit entry
    update_proposal(session, w["op"], p, justification="64 GPUs x 12 days", now=LATER)
    update_proposal(session, w["pi"], p, title="Continued pre-training", now=LATER)
    entries = _audit(session, p, "proposal.update")
    assert [e.actor for e in entries] == ["pia", "op"]
    assert entries[1].changes == {"justification": ["j", "64 GPUs x 12 days"]}


def test_edit_validation_names_every_bad_field_and_changes_nothing(
        session: Session, w: dict[str, Any]) -> None:
    p = _draft(session, w)
    with pytest.raises(InvalidInput) as exc:
        update_proposal(session, w["pi"], p, title="  ", gpu_type="Z80",
                        requested_gpu_hours=5000, abstract="new", now=LATER)
    fields = {i.path: i.message for i in exc.value.issues}
    assert set(fields) == {"title", "gpu_type", "requested_gpu_hours"}
    assert "must not be empty" in fields["title"]
    assert "Z80" in fields["gpu_type"]
    assert "exceed the call's maximum of 1000" in fields["requested_gpu_hours"]
    assert (p.title, p.abstract, p.requested_gpu_hours) == ("Pre-training", "a", 500.0)
    with pytest.raises(InvalidInput, match="must be a positive number"):
        update_proposal(session, w["pi"], p, requested_gpu_hours=0, now=LATER)
    with pytest.raises(InvalidInput, match="nothing to change"):
        update_proposal(session, w["pi"], p, now=LATER)
    assert _audit(session, p, "proposal.update") == []


@pytest.mark.parametrize("state", ["submitted", "under_review", "accepted", "rejected",
                                   "withdrawn"])
def test_edit_is_refused_after_submission(session: Session, w: dict[str, Any],
                                          state: str) -> None:
    if state == "withdrawn":
        p = _draft(session, w)
        withdraw_proposal(session, w["pi"], p, now=T0)
    else:
        p = _in_state(session, w, state)
    with pytest.raises(Conflict) as exc:
        update_proposal(session, w["pi"], p, title="new", now=LATER)
    assert exc.value.http_status == 409 and exc.value.field == "state"
    assert "only drafts can be edited" in exc.value.message
    assert "Withdraw it and write a new proposal" in (exc.value.hint or "")
    assert p.title == "Pre-training"


def test_only_the_pi_or_an_operator_edits_and_withdraws(session: Session,
                                                        w: dict[str, Any]) -> None:
    p = _in_state(session, w, "under_review")
    draft = _draft(session, w)
    # they may see it, not change it (permission is checked before the state)
    for who, proposal in (("member", draft), ("rev", p)):
        with pytest.raises(PermissionDenied, match="only the PI"):
            update_proposal(session, w[who], proposal, title="x", now=LATER)
        with pytest.raises(PermissionDenied):
            withdraw_proposal(session, w[who], p, now=LATER)
    with pytest.raises(NotFound):
        update_proposal(session, w["outsider"], draft, title="x", now=LATER)
    with pytest.raises(NotFound):
        withdraw_proposal(session, w["outsider"], p, now=LATER)
    withdraw_proposal(session, w["op"], p, reason="duplicate", now=LATER)
    assert p.withdrawn_by_user_id == w["op"].id


@pytest.mark.parametrize("state", ["draft", "submitted", "under_review"])
def test_withdraw_from_each_open_state(session: Session, w: dict[str, Any],
                                       state: str) -> None:
    p = _in_state(session, w, state)
    withdraw_proposal(session, w["pi"], p, reason=" found other compute ", now=LATER)
    assert p.state == ProposalState.WITHDRAWN.value
    assert p.withdrawn_at == LATER and p.withdrawn_by_user_id == w["pi"].id
    (entry,) = _audit(session, p, "proposal.withdrawn")
    expected: dict[str, Any] = {"state": [state, "withdrawn"], "reason": "found other compute"}
    if state == "under_review":
        expected["open_reviews_cancelled"] = ["rev"]
    assert entry.changes == expected
    session.commit()
    session.expire_all()
    stored = session.get(Proposal, p.id)
    assert stored is not None and stored.withdrawn_at == LATER
    assert stored.withdrawn_by is not None and stored.withdrawn_by.username == "pia"
    page = list_proposals(session, w["pi"], state="withdrawn")
    assert [x.id for x in page.items] == [p.id]


@pytest.mark.parametrize("state", ["accepted", "rejected"])
def test_decided_proposals_cannot_be_withdrawn(session: Session, w: dict[str, Any],
                                               state: str) -> None:
    p = _in_state(session, w, state)
    with pytest.raises(InvalidTransition) as exc:
        withdraw_proposal(session, w["pi"], p, now=LATER)
    assert exc.value.http_status == 409
    assert f"was already {state}" in exc.value.message and "cannot be withdrawn" in str(
        exc.value)
    assert p.state == state and p.withdrawn_at is None


def test_withdrawn_is_terminal_and_reviews_are_refused(session: Session,
                                                       w: dict[str, Any]) -> None:
    p = _in_state(session, w, "under_review")
    assign_reviewer(session, w["op"], p, reviewer="rev2", now=T0)
    accept_invitation(session, w["rev2"], p)
    submit_review(session, w["rev2"], p, technical_score=3, scientific_score=3, now=T0)
    withdraw_proposal(session, w["pi"], p, now=LATER)
    with pytest.raises(InvalidTransition, match="already withdrawn"):
        withdraw_proposal(session, w["pi"], p, now=LATER)
    with pytest.raises(InvalidTransition) as exc:
        submit_review(session, w["rev"], p, technical_score=4, scientific_score=5,
                      now=LATER)
    assert "withdrawn" in exc.value.message and "no longer requested" in exc.value.message
    for decision in ("accepted", "rejected"):
        with pytest.raises(InvalidTransition, match="from withdrawn"):
            decide_proposal(session, w["op"], p, decision=decision, now=LATER)
    third = make_user(session, username="rev3", reviewer=True)
    with pytest.raises(InvalidTransition, match="withdrawn"):
        assign_reviewer(session, w["op"], p, reviewer=third.username, now=LATER)
    with pytest.raises(InvalidTransition):
        submit_proposal(session, w["pi"], p, now=LATER)
    assert p.state == "withdrawn"


def test_assigned_reviewers_are_told_once(session: Session, w: dict[str, Any]) -> None:
    p = _in_state(session, w, "under_review")
    assign_reviewer(session, w["op"], p, reviewer="rev2", now=T0)
    accept_invitation(session, w["rev2"], p)
    submit_review(session, w["rev2"], p, technical_score=3, scientific_score=3, now=T0)
    draft = _draft(session, w)
    withdraw_proposal(session, w["pi"], p, now=LATER)
    withdraw_proposal(session, w["pi"], draft, now=LATER)  # no reviewer: no mail
    session.flush()
    assert notify.scan(session, now=LATER) == 2
    assert notify.scan(session, now=LATER + timedelta(minutes=1)) == 0  # idempotent
    msgs = {m.to_address: m for m in session.scalars(
        select(OutboxMessage).where(OutboxMessage.event == "proposal_withdrawn"))}
    assert set(msgs) == {"rev@example.eu", "rev2@example.eu"}
    assert f"Proposal {p.id} withdrawn" in msgs["rev@example.eu"].subject
    assert "no longer needed" in msgs["rev@example.eu"].body
    assert "Thank you for your review" in msgs["rev2@example.eu"].body


def test_one_award_per_proposal(session: Session, w: dict[str, Any]) -> None:
    """A second `award create --proposal` made a second award of the same GPU-hours."""
    from rechenwerk.access.awards import create_award

    p = _in_state(session, w, "accepted")
    first = create_award(session, w["op"], project=w["project"], proposal=p, gpu_hours=500,
                         starts_at=T0, now=T0)
    with pytest.raises(Conflict) as exc:
        create_award(session, w["op"], project=w["project"], proposal=p, gpu_hours=500,
                     starts_at=T0, now=T0)
    assert exc.value.message == f"proposal {p.id} already has award {first.id} (500 GPU-hours)"
    assert exc.value.field == "proposal"
    # more GPU-hours for the project without a proposal still work
    create_award(session, w["op"], project=w["project"], gpu_type="A100-80GB", gpu_hours=50,
                 starts_at=T0, now=T0)
