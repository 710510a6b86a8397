"""The review pipeline through the API (SQLite and PostgreSQL): GET .../pipeline for
whoever sees the proposal, POST .../assessments for operators, errors naming the field,
and a refused request writing nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from factories import bearer, make_call, make_org, make_project, make_token, make_user


@pytest.fixture
def w(session: Session) -> dict[str, Any]:
    sme = make_org(session, kind="sme")
    uni = make_org(session, kind="university")
    users = {"pi": make_user(session, username="pia", org=sme),
             "op": make_user(session, username="op", org=uni, operator=True)}
    make_project(session, pi=users["pi"], slug="alpha")
    make_call(session, slug="fast", access_mode="fast_lane")
    tokens = {name: bearer(make_token(session, u)) for name, u in users.items()}
    session.commit()
    return tokens


def _submitted(client: TestClient, t: dict[str, Any]) -> str:
    r = client.post("/api/v1/proposals", headers=t["pi"], json={
        "call": "fast", "project": "alpha", "title": "LLM", "gpu_type": "A100-80GB",
        "requested_gpu_hours": 500})
    assert r.status_code == 201, r.text
    url = f"/api/v1/proposals/{r.json()['id']}"
    assert client.post(url + "/submit", headers=t["pi"]).status_code == 200
    return url


def test_assessments_walk_a_fast_lane_proposal_to_its_decision(
        api_client: TestClient, w: dict[str, Any]) -> None:
    url = _submitted(api_client, w)
    pipe = api_client.get(url + "/pipeline", headers=w["pi"]).json()
    assert pipe["step"] == "eligibility" and pipe["call_type"] == "fast_lane"
    assert [s["step"] for s in pipe["steps"]] == ["eligibility", "technical", "decision"]
    r = api_client.post(url + "/decision", headers=w["op"], json={"decision": "accepted"})
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "decision"
    assert "eligibility step" in r.json()["detail"]
    r = api_client.post(url + "/assessments", headers=w["op"],
                        json={"step": "eligibility", "outcome": "pass", "note": "SME, DE"})
    assert r.status_code == 201, r.text
    assert r.json()["step"] == "technical" and r.json()["assessments"][0]["by"] == "op"
    r = api_client.post(url + "/assessments", headers=w["op"],
                        json={"step": "technical", "outcome": "pass"})
    assert r.json()["step"] == "decision"
    seen = api_client.get(url + "/pipeline", headers=w["pi"]).json()
    assert [a["by"] for a in seen["assessments"]] == [None, None]  # no operator names
    assert seen["assessments"][0]["note"] == "SME, DE"
    r = api_client.post(url + "/decision", headers=w["op"], json={"decision": "accepted"})
    assert r.status_code == 200 and r.json()["state"] == "accepted"
    assert api_client.get(url + "/pipeline", headers=w["op"]).json()["step"] is None


def test_bad_assessments_name_the_field_and_write_nothing(
        api_client: TestClient, w: dict[str, Any]) -> None:
    url = _submitted(api_client, w)
    for body, status, field in (
            ({"step": "scientific", "outcome": "pass"}, 422, "step"),
            ({"step": "eligibility", "outcome": "ok"}, 422, "outcome"),
            ({"step": "eligibility", "outcome": "fail"}, 422, "note"),
            ({"step": "technical", "outcome": "pass"}, 409, "step")):
        r = api_client.post(url + "/assessments", headers=w["op"], json=body)
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert field in {e["field"] for e in r.json()["errors"]}, r.json()
    pipe = api_client.get(url + "/pipeline", headers=w["op"]).json()
    assert pipe["assessments"] == [] and pipe["state"] == "submitted"
    r = api_client.post(url + "/assessments", headers=w["op"],
                        json={"step": "eligibility", "outcome": "fail", "note": "no VAT id"})
    assert r.status_code == 201 and r.json()["step"] == "eligibility"
    r = api_client.post(url + "/decision", headers=w["op"], json={"decision": "rejected",
                                                                  "comment": "not eligible"})
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    r = api_client.post(url + "/assessments", headers=w["op"],
                        json={"step": "eligibility", "outcome": "pass"})
    assert r.status_code == 409 and r.json()["code"] == "invalid_transition"


def test_reviewers_answer_the_invitation(api_client: TestClient, session: Session) -> None:
    uni, other = make_org(session, kind="university"), make_org(session, kind="university")
    pi = make_user(session, username="pia", org=uni)
    op = make_user(session, username="op", org=other, operator=True)
    rev = make_user(session, username="rev", org=other, reviewer=True)
    make_project(session, pi=pi, slug="alpha")
    make_call(session, slug="res", access_mode="research")
    t = {name: bearer(make_token(session, u)) for name, u in
         (("pi", pi), ("op", op), ("rev", rev))}
    session.commit()
    r = api_client.post("/api/v1/proposals", headers=t["pi"], json={
        "call": "res", "project": "alpha", "title": "LLM", "gpu_type": "A100-80GB",
        "requested_gpu_hours": 500})
    url = f"/api/v1/proposals/{r.json()['id']}"
    api_client.post(url + "/submit", headers=t["pi"])
    r = api_client.post(url + "/reviewers", headers=t["op"],
                        json={"reviewer": "rev", "due_on": "2020-01-01"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "due_on"
    r = api_client.post(url + "/reviewers", headers=t["op"],
                        json={"reviewer": "rev", "due_on": "2099-01-01"})
    assert r.status_code == 201 and r.json()["due_on"] == "2099-01-01"
    r = api_client.post(url + "/invitation", headers=t["rev"], json={"accept": False})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason"
    r = api_client.post(url + "/invitation", headers=t["rev"],
                        json={"accept": False, "reason": "no time"})
    assert r.status_code == 200 and r.json()["accepted"] is False
    r = api_client.post(url + "/invitation", headers=t["rev"], json={"accept": True})
    assert r.status_code == 409 and "already declined" in r.json()["detail"]
    r = api_client.post(url + "/reviews", headers=t["rev"],
                        json={"technical_score": 4, "scientific_score": 4})
    assert r.status_code == 409 and "declined" in r.json()["detail"]
    reviews = api_client.get(url + "/reviews", headers=t["op"]).json()
    assert [(x["reviewer"], x["decline_reason"]) for x in reviews] == [("rev", "no time")]
