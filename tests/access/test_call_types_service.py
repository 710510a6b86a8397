"""Call types in the database (issue 15 item 1): operators create them, calls name one,
proposals are held to it on create, edit and submit, and get their decision due date on
submission; overdue ones are found by the list filter and the operator's worklist."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from factories import T0, make_call, make_org, make_project, make_user
from rechenwerk.access.audit import list_audit
from rechenwerk.access.call_type_rules import EUROHPC_TYPES, CallTypeSpec
from rechenwerk.access.call_types import (
    create_call_type,
    ensure_call_types,
    get_call_type,
    list_call_types,
    spec_of,
)
from rechenwerk.access.calls import create_call
from rechenwerk.access.models import Call, CallType, Project, Proposal, User
from rechenwerk.access.proposal_states import is_overdue
from rechenwerk.access.proposals import (
    create_proposal,
    list_proposals,
    submit_proposal,
    update_proposal,
)
from rechenwerk.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from rechenwerk.web.worklist import operator_items

TYPES = {t.key: t for t in EUROHPC_TYPES}


def _fields(exc: InvalidInput) -> dict[str, str]:
    return {i.path: i.message for i in exc.issues}


@pytest.fixture
def op(session: Session) -> User:
    return make_user(session, username="olga", operator=True)


def test_operator_creates_a_type_and_everything_wrong_is_reported_at_once(
        session: Session, op: User) -> None:
    row = create_call_type(session, op, TYPES["fast-lane"], now=T0)
    assert get_call_type(session, "fast-lane").id == row.id == get_call_type(session, row.id).id
    assert spec_of(row) == TYPES["fast-lane"]
    assert [e.action for e in list_audit(session, op, entity="call_type").items] == [
        "call_type.create"]

    bad = CallTypeSpec("Bad Key", " ", min_gpu_hours=10, max_gpu_hours=5,
                       review_steps=("decision", "eligibility"), submission_mode="cutoffs")
    with pytest.raises(InvalidInput) as err:
        create_call_type(session, op, bad, now=T0)
    f = _fields(err.value)
    assert {"key", "title", "max_gpu_hours", "review_steps", "cutoff_period"} <= set(f)
    with pytest.raises(Conflict, match="already exists"):
        create_call_type(session, op, TYPES["fast-lane"], now=T0)
    with pytest.raises(PermissionDenied):
        create_call_type(session, make_user(session), TYPES["playground"], now=T0)
    with pytest.raises(NotFound, match="call-type list"):
        get_call_type(session, "nope")
    # ensure_ leaves existing types as they are and creates the missing ones
    rows = ensure_call_types(session, op, EUROHPC_TYPES, now=T0)
    assert [r.key for r in rows] == [t.key for t in EUROHPC_TYPES] and rows[1].id == row.id
    assert list_call_types(session).total == len(EUROHPC_TYPES)


def test_a_call_gets_its_access_modes_type_or_the_named_one(session: Session,
                                                            op: User) -> None:
    ensure_call_types(session, op, EUROHPC_TYPES, now=T0)
    end = T0 + timedelta(days=30)
    plain = create_call(session, op, slug="inno", title="t", access_mode="innovation",
                        opens_at=T0, closes_at=end, now=T0)
    assert plain.call_type.key == "innovation" and plain.eligible_kinds == ["sme", "startup"]
    typed = create_call(session, op, slug="pg", title="t", access_mode="innovation",
                        call_type="playground", opens_at=T0, closes_at=end, now=T0)
    assert typed.call_type.key == "playground" and typed.eligible_kinds == ["sme", "startup"]
    with pytest.raises(InvalidInput, match="does not admit university") as err:
        create_call(session, op, slug="pg2", title="t", access_mode="innovation",
                    call_type="playground", eligible_kinds=["university"], opens_at=T0,
                    closes_at=end, now=T0)
    assert err.value.field == "eligible_kinds"
    with pytest.raises(InvalidInput, match="below the minimum") as err:
        create_call(session, op, slug="ls", title="t", access_mode="research",
                    call_type="large-scale", max_gpu_hours=10_000, opens_at=T0,
                    closes_at=end, now=T0)
    assert err.value.field == "max_gpu_hours"
    with pytest.raises(NotFound):
        create_call(session, op, slug="xy", title="t", access_mode="research",
                    call_type="no-such-type", opens_at=T0, closes_at=end, now=T0)


def _fast_lane_setup(session: Session, op: User, *,
                     country: str = "DE") -> tuple[User, Project, Call]:
    (ctype,) = ensure_call_types(session, op, [TYPES["fast-lane"]], now=T0)
    org = make_org(session, kind="sme", country=country)
    pi = make_user(session, org=org)
    project = make_project(session, pi=pi)
    call = make_call(session, access_mode="fast_lane", call_type=ctype,
                     eligible_kinds=["sme", "startup"])
    return pi, project, call


def test_proposals_are_held_to_their_call_type(session: Session, op: User) -> None:
    pi, project, call = _fast_lane_setup(session, op)
    with pytest.raises(InvalidInput) as err:
        create_proposal(session, pi, call=call, project=project, title="t",
                        gpu_type="A100-80GB", requested_gpu_hours=60_000, duration_months=6,
                        now=T0)
    f = _fields(err.value)
    assert "exceed the maximum of 50000 of call type 'fast-lane'" in f["requested_gpu_hours"]
    assert "6 months is not allowed" in f["duration_months"] and "1, 2, 3" in f[
        "duration_months"]
    # A draft may leave the duration out; the submission may not, and changes nothing.
    p = create_proposal(session, pi, call=call, project=project, title="t",
                        gpu_type="A100-80GB", requested_gpu_hours=20_000, now=T0)
    with pytest.raises(InvalidInput, match="duration_months") as err:
        submit_proposal(session, pi, p, now=T0)
    assert "is required by call type 'fast-lane'" in _fields(err.value)["duration_months"]
    assert p.state == "draft" and p.submitted_at is None and p.due_on is None
    with pytest.raises(InvalidInput, match="duration_months"):
        update_proposal(session, pi, p, duration_months=4, now=T0)
    update_proposal(session, pi, p, duration_months=3, now=T0)
    # Submitted Thursday 2026-01-01 with a holiday on Monday 5th: 4 working days are
    # Fri 2nd, Tue 6th, Wed 7th, Thu 8th.
    submit_proposal(session, pi, p, now=T0, holidays=frozenset({date(2026, 1, 5)}))
    assert p.state == "submitted" and p.due_on == date(2026, 1, 8)
    entry = list_audit(session, op, entity="proposal").items[0]
    assert entry.action == "proposal.submitted" and entry.changes["due_on"] == "2026-01-08"


def test_countries_outside_the_types_list_are_refused(session: Session, op: User) -> None:
    pi, project, call = _fast_lane_setup(session, op, country="US")
    with pytest.raises(InvalidInput) as err:
        create_proposal(session, pi, call=call, project=project, title="t",
                        gpu_type="A100-80GB", requested_gpu_hours=100, duration_months=1,
                        now=T0)
    assert "country 'US' is not eligible" in _fields(err.value)["organization.country"]
    assert session.scalar(select(Proposal.id)) is None


def test_cutoff_types_are_due_after_the_next_cutoff(session: Session, op: User) -> None:
    (ctype,) = ensure_call_types(session, op, [TYPES["large-scale"]], now=T0)
    pi = make_user(session, org=make_org(session, kind="university", country="NO"))
    project = make_project(session, pi=pi)
    call = make_call(session, call_type=ctype)
    p = create_proposal(session, pi, call=call, project=project, title="t",
                        gpu_type="A100-80GB", requested_gpu_hours=80_000, duration_months=6,
                        now=T0)
    submitted = T0 + timedelta(days=14)  # 2026-01-15; the next cut-off is Sun 2026-02-01
    submit_proposal(session, pi, p, now=submitted)
    assert p.due_on == date(2026, 2, 13)  # 10 working days after 1 February


def test_overdue_proposals_are_listed_and_flagged_to_operators(session: Session,
                                                               op: User) -> None:
    pi, project, call = _fast_lane_setup(session, op)
    props = []
    for title in ("late", "decided"):
        p = create_proposal(session, pi, call=call, project=project, title=title,
                            gpu_type="A100-80GB", requested_gpu_hours=100, duration_months=1,
                            now=T0)
        submit_proposal(session, pi, p, now=T0)
        props.append(p)
    props[1].state = "rejected"
    session.flush()
    due = props[0].due_on
    assert due == date(2026, 1, 7)
    assert not is_overdue(props[0], due) and is_overdue(props[0], due + timedelta(days=1))
    assert not is_overdue(props[1], due + timedelta(days=1))
    late = list_proposals(session, op, overdue_on=due + timedelta(days=1))
    assert [p.title for p in late.items] == ["late"]
    assert list_proposals(session, op, overdue_on=due).total == 0
    items = {i.key: i for i in operator_items(session, T0 + timedelta(days=10), [])}
    assert items["overdue"].count == 1 and items["overdue"].href == "/proposals?overdue=true"
    assert "past the decision deadline" in items["overdue"].text


def test_access_mode_types_ask_no_duration(session: Session, op: User) -> None:
    """Calls from before call types keep their behaviour: no duration is asked."""
    pi = make_user(session, org=make_org(session, kind="sme"))
    project = make_project(session, pi=pi)
    call = make_call(session, access_mode="innovation")
    p = create_proposal(session, pi, call=call, project=project, title="t",
                        gpu_type="A100-80GB", requested_gpu_hours=100, now=T0)
    submit_proposal(session, pi, p, now=T0)
    assert p.due_on == date(2026, 1, 29)  # 20 working days, no duration needed
    assert session.scalars(select(CallType.key)).all() == ["innovation"]
    assert replace(spec_of(call.call_type), key="x").duration_months == ()
