"""PATCH /api/v1/proposals/{id} and POST /api/v1/proposals/{id}/withdraw through the app
(SQLite and PostgreSQL): partial updates, field errors, 409s with the reason, roles."""

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
             "member": make_user(session, username="mem", org=sme),
             "op": make_user(session, username="op", org=uni, operator=True),
             "rev": make_user(session, username="rev", org=uni, reviewer=True),
             "outsider": make_user(session, username="out", org=uni)}
    make_project(session, pi=users["pi"], slug="alpha", members={users["member"]: "member"})
    make_call(session, slug="inno", access_mode="innovation", max_gpu_hours=1000)
    tokens = {name: bearer(make_token(session, u)) for name, u in users.items()}
    session.commit()
    return tokens


def _draft(client: TestClient, t: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/api/v1/proposals", headers=t["pi"], json={
        "call": "inno", "project": "alpha", "title": "LLM", "abstract": "We train.",
        "gpu_type": "A100-80GB", "requested_gpu_hours": 500})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_patch_changes_only_the_given_fields(api_client: TestClient,
                                             w: dict[str, Any]) -> None:
    p = _draft(api_client, w)
    r = api_client.patch(f"/api/v1/proposals/{p['id']}", headers=w["pi"],
                         json={"requested_gpu_hours": 800, "gpu_type": "H100"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["requested_gpu_hours"], body["gpu_type"]) == (800.0, "H100-SXM")
    assert (body["title"], body["abstract"], body["state"]) == ("LLM", "We train.", "draft")
    audit = api_client.get("/api/v1/audit", headers=w["op"],
                           params={"entity": "proposal", "action": "proposal.update"}).json()
    assert audit["items"][0]["changes"] == {"gpu_type": ["A100-80GB", "H100-SXM"],
                                            "requested_gpu_hours": [500.0, 800.0]}


def test_patch_errors_name_the_field(api_client: TestClient, w: dict[str, Any]) -> None:
    p = _draft(api_client, w)
    url = f"/api/v1/proposals/{p['id']}"
    r = api_client.patch(url, headers=w["pi"], json={"requested_gpu_hours": 5000,
                                                     "gpu_type": "Z80"})
    assert r.status_code == 422
    fields = {e["field"]: e["message"] for e in r.json()["errors"]}
    assert "maximum of 1000" in fields["requested_gpu_hours"] and "Z80" in fields["gpu_type"]
    r = api_client.patch(url, headers=w["pi"], json={"title": "  "})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "title"
    r = api_client.patch(url, headers=w["pi"], json={"state": "accepted"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "state"  # not editable
    r = api_client.patch(url, headers=w["pi"], json={})
    assert r.status_code == 422 and "nothing to change" in r.json()["detail"]
    assert api_client.get(url, headers=w["pi"]).json()["requested_gpu_hours"] == 500.0


def test_patch_after_submission_is_409_with_what_to_do(api_client: TestClient,
                                                        w: dict[str, Any]) -> None:
    p = _draft(api_client, w)
    api_client.post(f"/api/v1/proposals/{p['id']}/submit", headers=w["pi"])
    r = api_client.patch(f"/api/v1/proposals/{p['id']}", headers=w["pi"],
                         json={"title": "Better"})
    assert r.status_code == 409
    problem = r.json()
    assert problem["code"] == "conflict" and "only drafts can be edited" in problem["detail"]
    assert f"rechenwerk proposal withdraw {p['id']}" in problem["hint"]


def test_roles_for_patch_and_withdraw(api_client: TestClient, w: dict[str, Any]) -> None:
    p = _draft(api_client, w)
    url = f"/api/v1/proposals/{p['id']}"
    assert api_client.patch(url, headers=w["member"], json={"title": "x"}).status_code == 403
    assert api_client.patch(url, headers=w["outsider"], json={"title": "x"}).status_code == 404
    assert api_client.post(url + "/withdraw", headers=w["member"]).status_code == 403
    assert api_client.post(url + "/withdraw", headers=w["outsider"]).status_code == 404
    assert api_client.patch(url, headers=w["op"], json={"title": "By op"}).status_code == 200


def test_withdraw_with_reason_then_terminal(api_client: TestClient, w: dict[str, Any]) -> None:
    p = _draft(api_client, w)
    url = f"/api/v1/proposals/{p['id']}"
    api_client.post(url + "/submit", headers=w["pi"])
    r = api_client.post(url + "/reviewers", headers=w["op"], json={"reviewer": "rev"})
    assert r.status_code == 201
    r = api_client.post(url + "/withdraw", headers=w["pi"], json={"reason": "Got a grant"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "withdrawn" and body["withdrawn_by"] == "pia"
    assert body["withdrawn_at"] is not None
    audit = api_client.get("/api/v1/audit", headers=w["op"],
                           params={"action": "proposal.withdrawn"}).json()["items"]
    assert audit[0]["changes"]["reason"] == "Got a grant"
    assert audit[0]["changes"]["open_reviews_cancelled"] == ["rev"]
    r = api_client.post(url + "/reviews", headers=w["rev"],
                        json={"technical_score": 4, "scientific_score": 4})
    assert r.status_code == 409 and "no longer requested" in r.json()["detail"]
    r = api_client.post(url + "/withdraw", headers=w["pi"])  # no body: reason optional
    assert r.status_code == 409 and r.json()["code"] == "invalid_transition"
    r = api_client.get("/api/v1/proposals", headers=w["pi"], params={"state": "withdrawn"})
    assert [x["id"] for x in r.json()["items"]] == [p["id"]]
    r = api_client.get("/api/v1/proposals", headers=w["pi"], params={"state": "gone"})
    assert r.status_code == 422 and "withdrawn" in r.json()["hint"]


def test_decided_proposal_cannot_be_withdrawn(api_client: TestClient,
                                              w: dict[str, Any]) -> None:
    p = _draft(api_client, w)
    url = f"/api/v1/proposals/{p['id']}"
    api_client.post(url + "/submit", headers=w["pi"])
    r = api_client.post(url + "/assessments", headers=w["op"],
                        json={"step": "eligibility", "outcome": "fail", "note": "not an SME"})
    assert r.status_code == 201, r.text
    r = api_client.post(url + "/decision", headers=w["op"], json={"decision": "rejected"})
    assert r.status_code == 200, r.text
    r = api_client.post(url + "/withdraw", headers=w["pi"], json={})
    assert r.status_code == 409
    assert "already rejected" in r.json()["detail"]
    assert "cannot be withdrawn" in r.json()["detail"]
