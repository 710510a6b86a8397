"""The dashboard's "Needs you" list per role and the "How to run jobs here" card: an
operator sees proposals by their review pipeline's step (to check, assess, route,
decide), drained nodes, failed jobs and undelivered mail; a reviewer open reviews; a PI
drafts; each links to where the work is done."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from factories import T0, bearer, make_call, make_org, make_project, make_token, make_user
from portal_login import login as _login
from portal_login import password_hash as _hash
from rechenwerk.access.call_type_rules import CallTypeSpec
from rechenwerk.access.call_types import ensure_call_types
from rechenwerk.access.models import Proposal, ProposalAssessment, Review, User
from rechenwerk.jobs.models import Job
from rechenwerk.notifications.models import OutboxMessage
from rechenwerk.web.worklist import operator_items


def _item(html: str, key: str) -> str:
    m = re.search(rf'data-testid="work-{key}"><a href="([^"]+)">([^<]+)<', html)
    return f"{m.group(1)} {m.group(2)}" if m else ""


def _proposal(session: Session, project: Any, pi: Any, call: Any, state: str) -> Proposal:
    p = Proposal(call_id=call.id, project_id=project.id, applicant_user_id=pi.id, title=state,
                 abstract="", justification="", gpu_type="A100-80GB",
                 requested_gpu_hours=100.0, state=state, created_at=T0)
    session.add(p)
    session.flush()
    return p


@pytest.fixture
def centre(session: Session) -> None:
    org = make_org(session)
    make_user(session, username="op", org=org, operator=True, password_hash=_hash())
    rev = make_user(session, username="rev", org=org, reviewer=True, password_hash=_hash())
    pi = make_user(session, username="pia", org=org, password_hash=_hash())
    viewer = make_user(session, username="vic", org=org, password_hash=_hash())
    project = make_project(session, pi=pi, slug="alpha", members={viewer: "viewer"})
    # peer review alone: submitted proposals need reviewers, reviewed ones a decision
    peer = ensure_call_types(session, None, [CallTypeSpec(
        "peer", "Peer review", "Reviews, then the decision.",
        review_steps=("scientific", "decision"))], now=T0)[0]
    call = make_call(session, call_type=peer)
    _proposal(session, project, pi, call, "draft")
    _proposal(session, project, pi, call, "submitted")
    _proposal(session, project, pi, call, "submitted")
    ready = _proposal(session, project, pi, call, "under_review")
    waiting = _proposal(session, project, pi, call, "under_review")
    session.add_all([
        Review(proposal_id=ready.id, reviewer_user_id=rev.id, assigned_at=T0,
               invited_at=T0, accepted=True, technical_score=4, scientific_score=5,
               comment="", submitted_at=T0),
        Review(proposal_id=waiting.id, reviewer_user_id=rev.id, assigned_at=T0,
               invited_at=T0, accepted=True),
    ])
    for ended in (T0 - timedelta(hours=2), T0 - timedelta(days=3)):  # one within 24 h
        session.add(Job(project_id=project.id, user_id=pi.id, name="x", spec={},
                        state="failed", qos="normal", requested_qos="normal",
                        over_budget=False, gpus=1, walltime_s=60, attempt=1,
                        attained_gpu_s=0.0, submitted_at=ended, started_at=ended,
                        ended_at=ended, updated_at=ended))
    session.add(OutboxMessage(user_id=pi.id, to_address="pia@example.eu", event="job",
                              subject="s", body="b", dedup_key="k1", created_at=T0,
                              next_attempt_at=T0, attempts=5, last_error="refused",
                              gave_up=True))
    session.commit()


def test_operator_sees_the_centres_work(api_client: Any, session: Session,
                                        centre: None) -> None:
    op = session.scalars(select(User).where(User.username == "op")).one()
    token = make_token(session, op)
    session.commit()
    html = _login(api_client, "op").get("/").text
    assert _item(html, "to-route") == "/proposals?state=submitted 2 proposals need reviewers →"
    assert _item(html, "to-decide") == (
        "/proposals?state=under_review 1 proposal is ready to decide →")
    assert _item(html, "failed-jobs") == "/jobs?state=failed 1 job failed in the last 24 hours →"
    assert _item(html, "mail").startswith("/ops/notifications 1 notification")
    assert _item(html, "drained") == ""  # no node drained
    nodes = api_client.get("/api/v1/nodes", headers=bearer(token)).json()["items"]
    name = nodes[0]["name"]
    r = api_client.post(f"/api/v1/nodes/{name}/drain", json={"reason": "fan"},
                        headers=bearer(token))
    assert r.status_code == 200, r.text
    html = api_client.get("/").text
    assert _item(html, "drained") == f"/ops/cluster 1 node is drained ({name}) →"


def test_reviewer_pi_and_viewer_see_their_own(api_client: Any, centre: None) -> None:
    html = _login(api_client, "rev").get("/").text
    assert _item(html, "reviews") == "/reviews 1 proposal waits for your review →"
    assert _item(html, "to-route") == ""
    html = _login(api_client, "pia").get("/").text
    assert _item(html, "drafts") == "/proposals?state=draft 1 draft proposal is not submitted yet →"
    card = html.split('data-testid="how-to-run"', 1)[1].split("</details>", 1)[0]
    assert "rechenwerk login --url http://testserver -u pia" in card
    assert "rechenwerk recipe init gpt-pretrain gpt --project alpha" in card
    html = _login(api_client, "vic").get("/").text
    assert 'data-testid="worklist"' not in html
    assert 'data-testid="how-to-run"' not in html  # a viewer cannot submit jobs


def _assess(session: Session, p: Proposal, step: str, outcome: str = "pass") -> None:
    session.add(ProposalAssessment(proposal_id=p.id, step=step, outcome=outcome, at=T0))


def test_the_worklist_follows_each_proposals_pipeline_step(session: Session) -> None:
    """A Fast Lane proposal (eligibility, technical, decision) needs its checks, not
    reviewers; "ready to decide" counts the proposals at the decision step."""
    org = make_org(session)
    pi = make_user(session, org=org)
    rev = make_user(session, org=make_org(session), reviewer=True)
    project = make_project(session, pi=pi)
    fast = make_call(session, access_mode="fast_lane")
    research = make_call(session)  # every step, scientific review among them
    unchecked = _proposal(session, project, pi, fast, "submitted")
    checked = _proposal(session, project, pi, fast, "submitted")
    _assess(session, checked, "eligibility")
    for _ in range(2):
        done = _proposal(session, project, pi, fast, "submitted")
        _assess(session, done, "eligibility")
        _assess(session, done, "technical")
    declined = _proposal(session, project, pi, research, "under_review")
    invited = _proposal(session, project, pi, research, "under_review")
    for p in (declined, invited):
        _assess(session, p, "eligibility")
        _assess(session, p, "technical")
    session.add_all([
        Review(proposal_id=declined.id, reviewer_user_id=rev.id, assigned_at=T0,
               invited_at=T0, accepted=False, decline_reason="busy"),
        Review(proposal_id=invited.id, reviewer_user_id=rev.id, assigned_at=T0,
               invited_at=T0, accepted=None),
    ])
    _proposal(session, project, pi, fast, "accepted")  # decided: not on the list
    session.flush()
    items = {i.key: (i.count, i.text, i.href) for i in operator_items(session, T0, [])}
    assert items == {
        "to-check": (1, "1 proposal needs its eligibility check", "/proposals?state=submitted"),
        "to-assess": (1, "1 proposal needs its technical assessment",
                      "/proposals?state=submitted"),
        # the declined invitation leaves it without a reviewer; the other waits for one
        "to-route": (1, "1 proposal needs reviewers", "/proposals?state=under_review"),
        "to-decide": (2, "2 proposals are ready to decide", "/proposals?state=submitted"),
    }
    _assess(session, unchecked, "eligibility")
    session.flush()
    items = {i.key: (i.count, i.text) for i in operator_items(session, T0, [])}
    assert items["to-assess"] == (2, "2 proposals need their technical assessment")
    assert "to-check" not in items


def test_every_counted_line_of_an_operators_work(session: Session) -> None:
    """The lines that are counts (COUNTED_WORK): each appears with its count and words
    once there is one of its kind, in the dashboard's order."""
    from datetime import date

    from factories import make_award
    from rechenwerk.access.models import AwardChange, ReportTask

    org = make_org(session)
    pi = make_user(session, username="pia", org=org)
    project = make_project(session, pi=pi, slug="alpha")
    pending = make_project(session, pi=pi, slug="beta")
    pending.approval = "pending"
    award = make_award(session, project, gpu_hours=100.0)
    other = make_award(session, project, gpu_hours=50.0)
    today = T0.date()
    session.add_all([
        ReportTask(award_id=award.id, kind="status", period_index=0, due_on=today,
                   state="submitted", created_at=T0),
        ReportTask(award_id=award.id, kind="final", period_index=-1,
                   due_on=date(today.year - 1, 1, 1), state="open", created_at=T0),
        ReportTask(award_id=other.id, kind="final", period_index=-1,
                   due_on=date(today.year - 1, 2, 1), state="open", created_at=T0),
        AwardChange(award_id=award.id, kind="extension", state="requested", reason="r",
                    requested_by_user_id=pi.id, requested_at=T0),
    ])
    session.commit()
    items = operator_items(session, T0, drained_nodes=["n1"])
    lines = [(i.key, i.count, i.text, i.href) for i in items]
    assert lines == [
        ("projects-pending", 1, "1 new project waits for approval", "/ops/projects"),
        ("reports-to-review", 1, "1 award report waits for review", "/report-tasks"),
        ("reports-overdue", 2, "2 final reports are overdue", "/report-tasks?state=open"),
        ("award-changes", 1, "1 award change request waits for a decision", "/award-changes"),
        ("drained", 1, "1 node is drained (n1)", "/ops/cluster"),
    ]
