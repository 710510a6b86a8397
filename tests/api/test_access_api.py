"""The access REST API: the demo flow, pagination and filters, and bad input that must
leave the database unchanged (each runs on SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from factories import T0, bearer, make_call, make_org, make_project, make_token, make_user
from rechenwerk.access.models import AuditEntry, Award, AwardPeriod, Proposal, Review
from rechenwerk.store.tables import metadata


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    sme = make_org(session, name="Nordlicht AI GmbH", kind="sme", country="DE")
    uni = make_org(session, name="Universita di Bologna", kind="university", country="IT")
    centre = make_org(session, name="Centre", kind="public_agency", country="DE")
    op = make_user(session, username="operator", org=centre, operator=True)
    pi = make_user(session, username="greta", org=sme)
    colleague = make_user(session, username="jonas", org=sme)
    rev_same = make_user(session, username="rev-same", org=sme, reviewer=True)
    rev = make_user(session, username="lucia", org=uni, reviewer=True)
    stranger = make_user(session, username="stranger", org=uni)
    project = make_project(session, pi=pi, slug="nordlicht-llm")
    innovation = make_call(session, slug="innovation-2026", access_mode="innovation")
    research = make_call(session, slug="research-2026", access_mode="research")
    tokens = {u.username: make_token(session, u)
              for u in (op, pi, colleague, rev_same, rev, stranger)}
    session.commit()
    return {"project": project, "innovation": innovation, "research": research,
            "tokens": tokens}


def h(world: dict[str, Any], who: str) -> dict[str, str]:
    return bearer(world["tokens"][who])


def _counts(session: Session) -> dict[str, int]:
    # End the read transaction afterwards: on SQLite every transaction takes the write
    # lock (BEGIN IMMEDIATE), so an open one would block the API's requests.
    session.rollback()
    counts = {t.name: int(session.scalar(select(func.count()).select_from(t)) or 0)
              for t in metadata.sorted_tables}
    session.rollback()
    return counts


def test_demo_flow_through_the_api(api_client: TestClient, world: dict[str, Any],
                                   session: Session) -> None:
    c = api_client
    r = c.post("/api/v1/proposals", headers=h(world, "greta"), json={
        "call": "innovation-2026", "project": "nordlicht-llm", "title": "Fine-tune a 7B model",
        "abstract": "a", "justification": "j", "gpu_type": "H100",
        "requested_gpu_hours": 5000})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert r.json()["state"] == "draft" and r.json()["gpu_type"] == "H100-SXM"
    assert c.post(f"/api/v1/proposals/{pid}/submit", headers=h(world, "greta")).json()[
        "state"] == "submitted"
    # conflict of interest: a reviewer from the applicant's organisation
    r = c.post(f"/api/v1/proposals/{pid}/reviewers", headers=h(world, "operator"),
               json={"reviewer": "rev-same"})
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "reviewer"
    assert "conflict of interest" in r.json()["detail"]
    r = c.post(f"/api/v1/proposals/{pid}/reviewers", headers=h(world, "operator"),
               json={"reviewer": "lucia"})
    assert r.status_code == 201, r.text
    assert r.json()["accepted"] is None and r.json()["due_on"] is not None
    r = c.post(f"/api/v1/proposals/{pid}/reviews", headers=h(world, "lucia"),
               json={"technical_score": 4, "scientific_score": 5})
    assert r.status_code == 409 and "accept the invitation" in r.json()["detail"]
    r = c.post(f"/api/v1/proposals/{pid}/invitation", headers=h(world, "lucia"),
               json={"accept": True})
    assert r.status_code == 200 and r.json()["accepted"] is True, r.text
    # the reviewer sees it now; the other reviewer does not
    assert c.get(f"/api/v1/proposals/{pid}", headers=h(world, "lucia")).status_code == 200
    assert c.get(f"/api/v1/proposals/{pid}", headers=h(world, "rev-same")).status_code == 404
    assert c.get("/api/v1/proposals", headers=h(world, "lucia")).json()["total"] == 1
    assert c.get("/api/v1/proposals", headers=h(world, "rev-same")).json()["total"] == 0
    # accepting before any review is refused
    r = c.post(f"/api/v1/proposals/{pid}/decision", headers=h(world, "operator"),
               json={"decision": "accepted"})
    assert r.status_code == 409
    r = c.post(f"/api/v1/proposals/{pid}/reviews", headers=h(world, "lucia"),
               json={"technical_score": 4, "scientific_score": 5, "comment": "solid"})
    assert r.status_code == 200, r.text
    r = c.post(f"/api/v1/proposals/{pid}/decision", headers=h(world, "operator"),
               json={"decision": "accepted"})  # the operators' checks are missing
    assert r.status_code == 409 and "eligibility step" in r.json()["detail"]
    for step in ("eligibility", "technical"):
        r = c.post(f"/api/v1/proposals/{pid}/assessments", headers=h(world, "operator"),
                   json={"step": step, "outcome": "pass"})
        assert r.status_code == 201, r.text
    # the right to reply: the PI sees the reviews without names and replies once
    pipe = c.get(f"/api/v1/proposals/{pid}/pipeline", headers=h(world, "greta")).json()
    assert pipe["step"] == "right_to_reply" and pipe["reply_due_on"] is not None
    seen = c.get(f"/api/v1/proposals/{pid}/reviews", headers=h(world, "greta")).json()
    assert [(x["reviewer"], x["comment"]) for x in seen] == [(None, "solid")]
    r = c.post(f"/api/v1/proposals/{pid}/decision", headers=h(world, "operator"),
               json={"decision": "accepted"})
    assert r.status_code == 409 and "right_to_reply step" in r.json()["detail"]
    r = c.post(f"/api/v1/proposals/{pid}/reply", headers=h(world, "greta"),
               json={"text": "We will add the ablation."})
    assert r.status_code == 200 and r.json()["step"] == "ranking", r.text
    call_slug = c.get(f"/api/v1/proposals/{pid}", headers=h(world, "operator")).json()["call"]
    ranking = c.get(f"/api/v1/calls/{call_slug}/ranking", headers=h(world, "operator")).json()
    assert [(x["proposal_id"], x["mean_score"]) for x in ranking["rows"]] == [(pid, 4.5)]
    r = c.post(f"/api/v1/calls/{call_slug}/ranking/confirm", headers=h(world, "operator"))
    assert r.status_code == 200 and r.json()["confirmed"], r.text
    r = c.post(f"/api/v1/proposals/{pid}/reply", headers=h(world, "greta"),
               json={"text": "again"})
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "text"
    r = c.post(f"/api/v1/proposals/{pid}/decision", headers=h(world, "operator"),
               json={"decision": "accepted", "granted_gpu_hours": 9e9})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "granted_gpu_hours"
    r = c.post(f"/api/v1/proposals/{pid}/decision", headers=h(world, "operator"),
               json={"decision": "accepted", "comment": "welcome"})
    mine = c.get(f"/api/v1/proposals/{pid}", headers=h(world, "greta")).json()
    assert mine["granted_gpu_hours"] == mine["requested_gpu_hours"]
    assert "solid" in mine["decision_letter"] and "lucia" not in mine["decision_letter"]
    assert r.json()["state"] == "accepted" and r.json()["reviewers"] == ["lucia"]
    # illegal transition
    r = c.post(f"/api/v1/proposals/{pid}/decision", headers=h(world, "operator"),
               json={"decision": "rejected"})
    assert r.status_code == 409 and r.json()["code"] == "invalid_transition"
    # the applicant sees the review after the decision, without the reviewer's name
    reviews = c.get(f"/api/v1/proposals/{pid}/reviews", headers=h(world, "greta")).json()
    assert [(x["reviewer"], x["scientific_score"]) for x in reviews] == [(None, 5)]
    r = c.post("/api/v1/awards", headers=h(world, "operator"), json={
        "project": "nordlicht-llm", "proposal": pid, "gpu_hours": 5000,
        "starts_at": "2026-01-01T00:00:00Z", "period_count": 2, "period_months": 3,
        "carry_over_limit_gpu_hours": 500})
    assert r.status_code == 201, r.text
    award = r.json()
    assert award["gpu_type"] == "H100-SXM"
    assert [(p["starts_at"][:10], p["ends_at"][:10], p["gpu_hours"]) for p in award["periods"]] \
        == [("2026-01-01", "2026-04-01", 2500.0), ("2026-04-01", "2026-07-01", 2500.0)]
    r = c.post("/api/v1/projects/nordlicht-llm/members", headers=h(world, "greta"),
               json={"username": "jonas", "role": "member"})
    assert r.status_code == 201, r.text
    assert c.get("/api/v1/awards", headers=h(world, "jonas")).json()["total"] == 1
    for at, n in (("2026-02-01T00:00:00", 1), ("2026-07-01T00:00:00Z", 0)):  # naive = UTC
        r = c.get("/api/v1/awards", headers=h(world, "jonas"), params={"active_at": at})
        assert r.status_code == 200 and r.json()["total"] == n, r.text
    me = c.get("/api/v1/me", headers=h(world, "jonas")).json()
    assert me["memberships"] == [{"project": "nordlicht-llm",
                                  "project_id": world["project"].id, "role": "member"}]
    audit = c.get("/api/v1/audit", headers=h(world, "operator"),
                  params={"entity": "proposal", "entity_id": str(pid)}).json()
    actions = [e["action"] for e in reversed(audit["items"])]
    assert actions == ["proposal.create", "proposal.submitted", "proposal.under_review",
                       "proposal.review_accepted", "proposal.review",
                       "proposal.assessment", "proposal.assessment", "proposal.reply",
                       "proposal.accepted"]  # the ranking is an entry of the call
    assert c.get("/api/v1/audit", headers=h(world, "greta")).status_code == 403


def test_pagination_and_filters(api_client: TestClient, world: dict[str, Any]) -> None:
    c = api_client
    for i in range(5):
        assert c.post("/api/v1/organizations", headers=h(world, "operator"), json={
            "name": f"Startup {i}", "kind": "startup", "country": "fr"}).status_code == 201
    page = c.get("/api/v1/organizations", headers=h(world, "greta"),
                 params={"kind": "startup", "limit": 2, "offset": 4}).json()
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 4
    assert [o["name"] for o in page["items"]] == ["Startup 4"]
    assert page["items"][0]["country"] == "FR"
    r = c.get("/api/v1/organizations", headers=h(world, "greta"), params={"limit": 0})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "limit"
    calls = c.get("/api/v1/calls", headers=h(world, "greta"),
                  params={"access_mode": "innovation", "status": "open"}).json()
    assert [x["slug"] for x in calls["items"]] == ["innovation-2026"]
    assert calls["items"][0]["status"] == "open"


BAD_PROPOSALS = [
    ({"requested_gpu_hours": -10}, 422, "requested_gpu_hours"),
    ({"gpu_type": "Z9000"}, 422, "gpu_type"),
    ({"call": "research-2026"}, 403, "call"),  # an SME is not eligible for research
    ({"call": "closed-call"}, 409, "call"),
]


@pytest.mark.parametrize(("patch", "status", "field"), BAD_PROPOSALS)
def test_bad_proposals_name_the_field_and_change_nothing(
    api_client: TestClient, world: dict[str, Any], session: Session,
    patch: dict[str, Any], status: int, field: str,
) -> None:
    make_call(session, slug="closed-call", access_mode="innovation",
              closes_at=T0.replace(year=2025))
    session.commit()
    before = _counts(session)
    body = {"call": "innovation-2026", "project": "nordlicht-llm", "title": "t",
            "gpu_type": "A100-80GB", "requested_gpu_hours": 100, **patch}
    r = api_client.post("/api/v1/proposals", headers=h(world, "greta"), json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["field"] == field
    assert r.json()["detail"]
    assert _counts(session) == before


def _accepted_proposal(session: Session, world: dict[str, Any]) -> int:
    p = Proposal(call_id=world["innovation"].id, project_id=world["project"].id,
                 applicant_user_id=world["project"].pi_user_id, title="t", abstract="",
                 justification="", gpu_type="H100-SXM", requested_gpu_hours=5000,
                 state="accepted", decision_comment="", created_at=T0)
    session.add(p)
    session.commit()
    return p.id


BAD_AWARDS = [
    ({"gpu_hours": -5}, "gpu_hours"),
    ({"gpu_type": "Z9000"}, "gpu_type"),
    ({"carry_over_limit_gpu_hours": -1}, "carry_over_limit_gpu_hours"),
    ({"periods": [
        {"starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-05-01T00:00:00Z",
         "gpu_hours": 2500},
        {"starts_at": "2026-04-01T00:00:00Z", "ends_at": "2026-07-01T00:00:00Z",
         "gpu_hours": 2500}]}, "periods.1.starts_at"),
    ({"periods": [
        {"starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-04-01T00:00:00Z",
         "gpu_hours": 100}]}, "periods"),  # does not add up to 5000
]


@pytest.mark.parametrize(("patch", "field"), BAD_AWARDS)
def test_bad_awards_name_the_field_and_change_nothing(
    api_client: TestClient, world: dict[str, Any], session: Session,
    patch: dict[str, Any], field: str,
) -> None:
    pid = _accepted_proposal(session, world)
    before = _counts(session)
    body = {"project": "nordlicht-llm", "proposal": pid, "gpu_hours": 5000,
            "starts_at": "2026-01-01T00:00:00Z", **patch}
    r = api_client.post("/api/v1/awards", headers=h(world, "operator"), json=body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field
    assert _counts(session) == before


def test_scores_out_of_range(api_client: TestClient, world: dict[str, Any],
                             session: Session) -> None:
    pid = _accepted_proposal(session, world)
    lucia = world["tokens"]["lucia"]
    lucia_id = _user_id(api_client, lucia)
    prop = session.get(Proposal, pid)
    assert prop is not None
    prop.state = "under_review"
    session.add(Review(proposal_id=pid, reviewer_user_id=lucia_id, assigned_at=T0,
                       invited_at=T0, accepted=True))
    session.commit()
    before = _counts(session)
    r = api_client.post(f"/api/v1/proposals/{pid}/reviews", headers=bearer(lucia),
                        json={"technical_score": 6, "scientific_score": 0})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"technical_score", "scientific_score"}
    assert _counts(session) == before
    assert session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "proposal.review")) == 0


def _user_id(client: TestClient, token: str) -> int:
    return int(client.get("/api/v1/me", headers=bearer(token)).json()["id"])


def test_award_rows_are_typed(api_client: TestClient, world: dict[str, Any],
                              session: Session) -> None:
    pid = _accepted_proposal(session, world)
    r = api_client.post("/api/v1/awards", headers=h(world, "operator"), json={
        "project": "nordlicht-llm", "proposal": pid, "gpu_hours": 1000.5,
        "starts_at": "2026-01-01T00:00:00Z", "period_count": 3, "period_months": 1})
    assert r.status_code == 201, r.text
    session.rollback()
    award = session.scalars(select(Award)).one()
    assert isinstance(award.gpu_hours, float)
    periods = session.scalars(select(AwardPeriod).order_by(AwardPeriod.starts_at)).all()
    assert sum(p.gpu_hours for p in periods) == pytest.approx(1000.5)
    assert [p.starts_at.month for p in periods] == [1, 2, 3]
