"""The right to reply (review pipeline step 3): once the reviews are complete the PI sees
them (without names) and may reply once until the deadline (working days, holidays
skipped); the step completes on the reply or when the deadline passes. Both databases."""

from __future__ import annotations

from datetime import date, datetime, timedelta

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
)
from rechenwerk.access.models import Proposal, User
from rechenwerk.access.proposals import create_proposal, decide_proposal, submit_proposal
from rechenwerk.access.review_pipeline import Deadlines, current_step, reply_due, submit_reply
from rechenwerk.access.reviews import assign_reviewer, list_reviews, submit_review
from rechenwerk.errors import Conflict, InvalidInput, PermissionDenied

# 2026-01-01 is a Thursday; with 2026-01-06 a holiday, 3 working days are 2, 5, 7 January.
HOLIDAYS = frozenset({date(2026, 1, 6)})
RULES = Deadlines(holidays=HOLIDAYS, reply_days=3)


def _reviewed(session: Session) -> tuple[Proposal, User, User, User]:
    op = make_user(session, operator=True)
    uni = make_org(session, kind="university")
    pi = make_user(session, org=uni)
    member = make_user(session, org=uni)
    project = make_project(session, pi=pi, members={member: "member"})
    p = create_proposal(session, pi, call=make_call(session), project=project, title="t",
                        gpu_type="A100-80GB", requested_gpu_hours=100, now=T0)
    submit_proposal(session, pi, p, now=T0)
    pass_checks(session, op, p)
    rev = make_user(session, reviewer=True)
    assign_reviewer(session, op, p, reviewer=rev.username, now=T0)
    accept_invitation(session, rev, p)
    assert reply_due(session, p, RULES) is None  # no review yet: no reply
    assert list_reviews(session, pi, p) == []
    with pytest.raises(Conflict, match="scientific step"):
        submit_reply(session, pi, p, text="early", now=T0, deadlines=RULES)
    submit_review(session, rev, p, technical_score=4, scientific_score=3,
                  comment="needs ablations", now=T0)
    return p, op, pi, member


def test_the_pi_replies_once(session: Session) -> None:
    p, op, pi, member = _reviewed(session)
    assert reply_due(session, p, RULES) == date(2026, 1, 7)
    assert current_step(session, p, deadlines=RULES) == "right_to_reply"
    assert [r.comment for r in list_reviews(session, pi, p)] == ["needs ablations"]
    with pytest.raises(Conflict, match="right_to_reply step"):
        decide_proposal(session, op, p, decision="accepted", now=T0, holidays=HOLIDAYS,
                        reply_days=3)
    with pytest.raises(PermissionDenied):
        submit_reply(session, member, p, text="me too", now=T0, deadlines=RULES)
    with pytest.raises(InvalidInput) as empty:
        submit_reply(session, pi, p, text="  ", now=T0, deadlines=RULES)
    assert empty.value.field == "text" and p.replied_at is None
    submit_reply(session, pi, p, text="We add the ablations.", now=T0 + timedelta(days=1),
                 deadlines=RULES)
    assert p.reply_text == "We add the ablations."
    with pytest.raises(Conflict, match="one reply"):
        submit_reply(session, pi, p, text="again", now=T0, deadlines=RULES)
    assert current_step(session, p, deadlines=RULES) == "ranking"
    confirm_call_ranking(session, op, p)
    assert current_step(session, p, deadlines=RULES) == "decision"
    decide_proposal(session, op, p, decision="accepted", now=T0 + timedelta(days=1),
                    holidays=HOLIDAYS, reply_days=3)


def test_the_step_completes_when_the_deadline_passes(session: Session) -> None:
    p, op, pi, _ = _reviewed(session)
    last_day = datetime(2026, 1, 7, 23, 0, tzinfo=T0.tzinfo)
    assert current_step(session, p, deadlines=Deadlines(
        today=last_day.date(), holidays=HOLIDAYS, reply_days=3)) == "right_to_reply"
    after = last_day + timedelta(days=1)
    with pytest.raises(Conflict, match="due by 2026-01-07"):
        submit_reply(session, pi, p, text="late", now=after, deadlines=RULES)
    confirm_call_ranking(session, op, p, now=after, deadlines=Deadlines(
        today=after.date(), holidays=HOLIDAYS, reply_days=3))
    decide_proposal(session, op, p, decision="rejected", comment="ranked too low",
                    now=after, holidays=HOLIDAYS, reply_days=3)
    assert p.state == "rejected" and p.replied_at is None
