"""Access services on SQLite and PostgreSQL: rules, transitions, periods, credentials."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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
from rechenwerk.access.accounts import create_account, update_account
from rechenwerk.access.awards import (
    _check_periods,
    active_award_periods,
    carry_over_gpu_hours,
    create_award,
    split_periods,
)
from rechenwerk.access.calls import call_status, close_call, create_call
from rechenwerk.access.models import AuditEntry, ProposalState
from rechenwerk.access.organizations import create_organization
from rechenwerk.access.projects import (
    add_member,
    list_projects,
    project_members,
    remove_member,
    require_project_role,
    visible_project,
)
from rechenwerk.access.proposal_states import PROPOSAL_TRANSITIONS
from rechenwerk.access.proposals import create_proposal, decide_proposal, submit_proposal
from rechenwerk.access.reviews import assign_reviewer, submit_review
from rechenwerk.access.security import (
    authenticate_password,
    authenticate_token,
    create_token,
    hash_password,
    revoke_token,
)
from rechenwerk.access.users import create_user, update_user
from rechenwerk.errors import (
    Conflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)


def test_transition_table_is_closed_and_terminal_states_stay_terminal() -> None:
    table = PROPOSAL_TRANSITIONS
    assert set(table) == set(ProposalState)
    assert table[ProposalState.ACCEPTED] == frozenset()
    assert table[ProposalState.REJECTED] == frozenset()
    # every state is reachable from draft
    seen, todo = {ProposalState.DRAFT}, [ProposalState.DRAFT]
    while todo:
        for nxt in table[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(ProposalState)


def test_proposal_life_cycle_and_illegal_moves(session: Session) -> None:
    op = make_user(session, operator=True)
    sme = make_org(session, kind="sme")
    pi = make_user(session, org=sme)
    reviewer = make_user(session, reviewer=True)
    project = make_project(session, pi=pi)
    call = make_call(session, access_mode="innovation")
    p = create_proposal(session, pi, call=call, project=project, title="t",
                        gpu_type="a100-80gb", requested_gpu_hours=100, now=T0)
    assert p.gpu_type == "A100-80GB" and p.state == "draft"
    with pytest.raises(InvalidTransition):
        decide_proposal(session, op, p, decision="accepted", now=T0)
    with pytest.raises(InvalidTransition):  # reviewers are assigned to submitted proposals
        assign_reviewer(session, op, p, reviewer=reviewer.username, now=T0)
    submit_proposal(session, pi, p, now=T0)
    with pytest.raises(InvalidTransition) as exc:
        submit_proposal(session, pi, p, now=T0)
    assert exc.value.field == "state" and "submitted" in (exc.value.hint or "")
    assign_reviewer(session, op, p, reviewer=reviewer.username, now=T0)
    assert p.state == "under_review"
    accept_invitation(session, reviewer, p)
    with pytest.raises(Conflict):
        assign_reviewer(session, op, p, reviewer=reviewer.username, now=T0)
    with pytest.raises(InvalidInput) as bad:
        submit_review(session, reviewer, p, technical_score=0, scientific_score=9, now=T0)
    assert {i.path for i in bad.value.issues} == {"technical_score", "scientific_score"}
    submit_review(session, reviewer, p, technical_score=3, scientific_score=4, now=T0)
    with pytest.raises(Conflict):
        submit_review(session, reviewer, p, technical_score=3, scientific_score=4, now=T0)
    with pytest.raises(Conflict) as early:  # the operators' checks come first
        decide_proposal(session, op, p, decision="rejected", comment="budget", now=T0)
    assert early.value.field == "decision" and "eligibility step" in early.value.message
    pass_checks(session, op, p)
    reply_to_reviews(session, p)
    confirm_call_ranking(session, op, p)
    decide_proposal(session, op, p, decision="rejected", comment="budget", now=T0)
    assert p.state == "rejected" and p.decided_at == T0
    with pytest.raises(InvalidTransition):
        decide_proposal(session, op, p, decision="accepted", now=T0)
    actions = session.scalars(select(AuditEntry.action).where(
        AuditEntry.entity == "proposal").order_by(AuditEntry.id)).all()
    assert actions == ["proposal.create", "proposal.submitted", "proposal.under_review",
                       "proposal.review_accepted", "proposal.review", "proposal.assessment",
                       "proposal.assessment", "proposal.reply", "proposal.rejected"]


def test_conflict_of_interest_and_non_reviewers(session: Session) -> None:
    op = make_user(session, operator=True)
    sme = make_org(session, kind="sme")
    pi = make_user(session, org=sme)
    colleague_reviewer = make_user(session, org=sme, reviewer=True)
    not_reviewer = make_user(session)
    project = make_project(session, pi=pi)
    p = create_proposal(session, pi, call=make_call(session, access_mode="innovation"),
                        project=project, title="t", gpu_type="H100",
                        requested_gpu_hours=1, now=T0)
    submit_proposal(session, pi, p, now=T0)
    with pytest.raises(Conflict) as exc:
        assign_reviewer(session, op, p, reviewer=colleague_reviewer.username, now=T0)
    assert exc.value.field == "reviewer" and "conflict of interest" in exc.value.message
    with pytest.raises(InvalidInput):
        assign_reviewer(session, op, p, reviewer=not_reviewer.username, now=T0)
    assert p.state == "submitted"


def test_eligibility_closed_calls_and_limits(session: Session) -> None:
    uni_pi = make_user(session, org=make_org(session, kind="university"))
    project = make_project(session, pi=uni_pi)
    innovation = make_call(session, access_mode="innovation")
    with pytest.raises(PermissionDenied) as exc:
        create_proposal(session, uni_pi, call=innovation, project=project, title="t",
                        gpu_type="H100", requested_gpu_hours=1, now=T0)
    assert exc.value.field == "call" and "university" in exc.value.message
    closed = make_call(session, closes_at=T0 - timedelta(days=1))
    upcoming = make_call(session, opens_at=T0 + timedelta(days=1))
    for call in (closed, upcoming):
        with pytest.raises(Conflict) as c:
            create_proposal(session, uni_pi, call=call, project=project, title="t",
                            gpu_type="H100", requested_gpu_hours=1, now=T0)
        assert c.value.field == "call"
    small = make_call(session, max_gpu_hours=100)
    with pytest.raises(InvalidInput) as big:
        create_proposal(session, uni_pi, call=small, project=project, title="t",
                        gpu_type="H100", requested_gpu_hours=101, now=T0)
    assert big.value.field == "requested_gpu_hours"
    assert call_status(closed, T0) == "closed"
    assert call_status(upcoming, T0) == "upcoming"
    op = make_user(session, operator=True)
    open_call = make_call(session)
    close_call(session, op, open_call, now=T0)
    assert call_status(open_call, T0) == "closed"
    with pytest.raises(InvalidTransition):
        close_call(session, op, open_call, now=T0)


def test_roles_and_visibility(session: Session) -> None:
    pi = make_user(session)
    member, viewer, outsider = (make_user(session) for _ in range(3))
    op = make_user(session, operator=True)
    project = make_project(session, pi=pi, members={member: "member", viewer: "viewer"})
    assert require_project_role(session, member, project) is not None
    assert require_project_role(session, op, project) is None  # operators pass
    with pytest.raises(PermissionDenied):
        require_project_role(session, viewer, project)
    with pytest.raises(NotFound):
        require_project_role(session, outsider, project)
    assert visible_project(session, viewer, project.slug) is project
    with pytest.raises(NotFound):
        visible_project(session, outsider, str(project.id))
    with pytest.raises(PermissionDenied):
        add_member(session, member, project, username=outsider.username, role="member",
                   now=T0)
    with pytest.raises(InvalidInput):
        add_member(session, pi, project, username=outsider.username, role="pi", now=T0)
    add_member(session, pi, project, username=viewer.username, role="member", now=T0)
    with pytest.raises(Conflict):
        remove_member(session, op, project, username=pi.username, now=T0)
    remove_member(session, pi, project, username=viewer.username, now=T0)
    assert [m.role for m in project_members(session, project)] == ["pi", "member"]
    page = list_projects(session, outsider)
    assert page.total == 0
    changes = session.scalars(select(AuditEntry.changes).where(
        AuditEntry.action == "membership.update")).one()
    assert changes == {"user": viewer.username, "role": ["viewer", "member"]}


def test_award_periods_split_validate_and_activate(session: Session) -> None:
    op = make_user(session, operator=True)
    project = make_project(session)
    award = create_award(session, op, project=project, gpu_type="H100", gpu_hours=5000,
                         starts_at=datetime(2026, 1, 1, tzinfo=UTC), period_count=2,
                         carry_over_limit_gpu_hours=500, now=T0)
    assert [(p.starts_at.month, p.ends_at.month, p.gpu_hours) for p in award.periods] == [
        (1, 4, 2500.0), (4, 7, 2500.0)]
    assert award.expires_at == datetime(2026, 7, 1, tzinfo=UTC)
    at = datetime(2026, 5, 5, tzinfo=UTC)
    assert [p.id for p in active_award_periods(session, project, at)] == [
        award.periods[1].id]
    assert active_award_periods(session, project, datetime(2026, 7, 1, tzinfo=UTC)) == []
    # carry-over: 1,000 unused in Q1 but only 500 carry into Q2
    assert carry_over_gpu_hours(award, [1000.0]) == [2500.0, 3000.0]
    assert carry_over_gpu_hours(award, [100.0]) == [2500.0, 2600.0]
    with pytest.raises(InvalidInput) as exc:
        create_award(session, op, project=project, gpu_type="H100", gpu_hours=100,
                     starts_at=T0, periods=[
                             (T0, T0 + timedelta(days=40), 50),
                             (T0 + timedelta(days=30), T0 + timedelta(days=60), 50)],
                     now=T0)
    assert exc.value.field == "periods.1.starts_at"
    with pytest.raises(InvalidInput) as exc:
        create_award(session, op, project=project, gpu_type="H100", gpu_hours=100,
                     starts_at=T0, expires_at=T0 + timedelta(days=10),
                     periods=[(T0, T0 + timedelta(days=30), 100)], now=T0)
    assert exc.value.field == "periods.0.ends_at"
    for kwargs, field in (({"gpu_hours": -1}, "gpu_hours"), ({"gpu_type": "X1"}, "gpu_type"),
                          ({"carry_over_limit_gpu_hours": -1}, "carry_over_limit_gpu_hours"),
                          ({"gpu_hours": float("nan")}, "gpu_hours")):
        args = {"gpu_type": "H100", "gpu_hours": 10.0, **kwargs}
        with pytest.raises(InvalidInput) as exc:
            create_award(session, op, project=project, starts_at=T0, now=T0,
                         **args)  # type: ignore[arg-type]
        assert exc.value.field == field
    with pytest.raises(PermissionDenied):
        create_award(session, make_user(session), project=project, gpu_type="H100",
                     gpu_hours=1, starts_at=T0, now=T0)


def test_split_periods_month_ends() -> None:
    periods = split_periods(datetime(2026, 1, 31, tzinfo=UTC), 100.0, 3, months=1)
    assert [p[0].date().isoformat() for p in periods] == ["2026-01-31", "2026-02-28",
                                                         "2026-03-31"]
    assert sum(p[2] for p in periods) == pytest.approx(100.0)


def test_pay_per_use_accounts(session: Session) -> None:
    op = make_user(session, operator=True)
    project = make_project(session)
    account = create_account(session, op, project=project, credit_limit_eur=1000,
                             prices={"H100": 2.5}, now=T0)
    assert account.price_for("H100-SXM") == 2.5 and account.price_for("A100-80GB") is None
    with pytest.raises(Conflict):
        create_account(session, op, project=project, credit_limit_eur=1, prices={"H100": 1},
                       now=T0)
    update_account(session, op, account, prices={"A100-80GB": 1.2}, credit_limit_eur=50,
                   now=T0)
    assert account.price_for("A100-80GB") == 1.2 and account.credit_limit_eur == 50
    with pytest.raises(InvalidInput) as exc:
        update_account(session, op, account, prices={"Z1": 1.0}, credit_limit_eur=7,
                       now=T0)
    assert exc.value.field == "prices.Z1"
    assert account.credit_limit_eur == 50  # validated before anything changed
    assert session.scalars(select(AuditEntry.action).where(
        AuditEntry.entity == "account")).all() == ["account.create", "account.update"]


def test_tokens_and_passwords(session: Session) -> None:
    alice = make_user(session, password_hash=hash_password("correct horse"))
    token, secret = create_token(session, alice, name="laptop", now=T0,
                                 expires_at=T0 + timedelta(days=1))
    assert token.token_hash != secret and secret not in token.token_hash
    assert secret.startswith(token.prefix)
    assert authenticate_token(session, secret, now=T0) is alice
    assert token.last_used_at == T0
    with pytest.raises(Unauthenticated, match="expired"):
        authenticate_token(session, secret, now=T0 + timedelta(days=1))
    revoke_token(session, alice, token.id, now=T0)
    with pytest.raises(Unauthenticated, match="revoked"):
        authenticate_token(session, secret, now=T0)
    with pytest.raises(NotFound):
        revoke_token(session, make_user(session), token.id, now=T0)
    assert authenticate_password(session, alice.username, "correct horse") is alice
    assert alice.password_hash is not None and alice.password_hash.startswith("$argon2id$")
    for user, pw in ((alice.username, "wrong"), ("nobody", "correct horse")):
        with pytest.raises(Unauthenticated, match="wrong username or password"):
            authenticate_password(session, user, pw)
    with pytest.raises(InvalidInput):
        hash_password("short")
    with pytest.raises(InvalidInput):
        create_token(session, alice, name="old", now=T0, expires_at=T0 - timedelta(seconds=1))


def test_only_operators_create_orgs_users_calls(session: Session) -> None:
    user = make_user(session)
    with pytest.raises(PermissionDenied):
        create_organization(session, user, name="X", kind="sme", country="DE", now=T0)
    with pytest.raises(PermissionDenied):
        create_user(session, user, username="bob", email="b@x.eu", now=T0)
    with pytest.raises(PermissionDenied):
        create_call(session, user, slug="c", title="t", access_mode="research",
                    opens_at=T0, closes_at=T0 + timedelta(days=1), now=T0)
    op = make_user(session, operator=True)
    with pytest.raises(InvalidInput) as exc:
        create_organization(session, op, name="X", kind="bakery", country="DE", now=T0)
    assert exc.value.field == "kind"
    with pytest.raises(InvalidInput):
        create_call(session, op, slug="c1", title="t", access_mode="research",
                    opens_at=T0, closes_at=T0, now=T0)
    call = create_call(session, op, slug="c2", title="t", access_mode="innovation",
                       opens_at=T0, closes_at=T0 + timedelta(days=1), now=T0)
    assert call.eligible_kinds == ["sme", "startup"]


@given(start_day=st.integers(min_value=0, max_value=3000),
       hours=st.floats(min_value=0.001, max_value=1e7, allow_nan=False),
       count=st.integers(min_value=1, max_value=24), months=st.integers(min_value=1, max_value=12))
@settings(max_examples=200, deadline=None)
def test_split_periods_properties(start_day: int, hours: float, count: int,
                                  months: int) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=start_day)
    periods = split_periods(start, hours, count, months)
    assert len(periods) == count and periods[0][0] == start
    assert all(a[1] == b[0] for a, b in itertools.pairwise(periods))  # contiguous
    assert all(s < e and h >= 0 for s, e, h in periods)
    assert sum(p[2] for p in periods) == pytest.approx(hours, rel=1e-9, abs=1e-5)
    # what split_periods produces is accepted by the validator
    _check_periods(periods, sum(p[2] for p in periods), start, periods[-1][1])


def test_update_user_roles_and_deactivation(session: Session) -> None:
    op = make_user(session, operator=True)
    bob = make_user(session)
    _, secret = create_token(session, bob, name="t", now=T0)
    update_user(session, op, bob, is_reviewer=True, organization=op.organization_id,
                now=T0)
    assert bob.is_reviewer and bob.organization_id == op.organization_id
    update_user(session, op, bob, is_active=False, now=T0)
    with pytest.raises(Unauthenticated, match="deactivated"):
        authenticate_token(session, secret, now=T0)
    with pytest.raises(Conflict):
        update_user(session, op, op, is_operator=False, now=T0)
    with pytest.raises(PermissionDenied):
        update_user(session, bob, op, is_reviewer=True, now=T0)
    with pytest.raises(NotFound):
        update_user(session, op, bob, full_name="Robert", organization="nope", now=T0)
    assert bob.full_name != "Robert"
    changes = session.scalars(select(AuditEntry.changes).where(
        AuditEntry.action == "user.update").order_by(AuditEntry.id)).all()
    assert changes[0]["is_reviewer"] == [False, True] and changes[1] == {
        "is_active": [True, False]}
