"""The AUP gate and token scopes through the REST API (SQLite and PostgreSQL): until a
user accepts the centre's current AUP, every request that changes something (jobs,
proposals, tokens) is a 403 problem naming the AUP and how to accept it; reads and
revoking a token still work. A read-only token may only use GET and HEAD."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from factories import T0, bearer, make_award, make_call, make_project, make_token, make_user

SPEC = {"name": "train", "command": "python3 train.py", "gpus": 1, "walltime": "1h"}


def _world(session: Session) -> dict[str, Any]:
    pi = make_user(session)
    op = make_user(session, operator=True)
    project = make_project(session, pi=pi)
    make_award(session, project, gpu_hours=100.0)
    call = make_call(session, opens_at=T0, max_gpu_hours=10_000)
    out = {"slug": project.slug, "call": call.slug, "pi": bearer(make_token(session, pi)),
           "pi_spare": make_token(session, pi, name="spare"),
           "op": bearer(make_token(session, op))}
    session.commit()
    return out


def _proposal(w: dict[str, Any]) -> dict[str, Any]:
    return {"call": w["call"], "project": w["slug"], "title": "More GPUs", "abstract": "a",
            "justification": "j", "gpu_type": "A100-80GB", "requested_gpu_hours": 100}


def _refused(r: Any, version: int) -> None:
    assert r.status_code == 403, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "aup_not_accepted"
    assert f"acceptable-use policy (version {version})" in body["detail"]
    assert "rechenwerk aup accept" in body["hint"] and "/aup" in body["hint"]


def test_nothing_is_gated_before_an_aup_is_published(api_client: TestClient,
                                                     session: Session) -> None:
    w = _world(session)
    assert api_client.get("/api/v1/aup", headers=w["pi"]).status_code == 404
    r = api_client.post("/api/v1/jobs", json={**SPEC, "project": w["slug"]}, headers=w["pi"])
    assert r.status_code == 201, r.text


def test_gate_until_accepted_and_again_after_a_new_version(api_client: TestClient,
                                                           session: Session) -> None:
    w = _world(session)
    r = api_client.post("/api/v1/aup", json={"text": "Rule 1."}, headers=w["pi"])
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"
    r = api_client.post("/api/v1/aup", json={"text": "Rule 1."}, headers=w["op"])
    assert r.status_code == 201 and r.json()["version"] == 1

    job = {**SPEC, "project": w["slug"]}
    _refused(api_client.post("/api/v1/jobs", json=job, headers=w["pi"]), 1)
    _refused(api_client.post("/api/v1/proposals", json=_proposal(w), headers=w["pi"]), 1)
    _refused(api_client.post("/api/v1/tokens", json={"name": "x"}, headers=w["pi"]), 1)
    # Reading, the planner's calculators, and revoking a token stay possible.
    assert api_client.get("/api/v1/jobs", headers=w["pi"]).status_code == 200
    assert api_client.post("/api/v1/plan/train", headers=w["pi"], json={
        "params": 7e9, "tokens": 1e11, "gpu": "A100-80GB", "gpus": 8}).status_code == 200
    tokens = api_client.get("/api/v1/tokens", headers=w["pi"]).json()
    spare = next(t["id"] for t in tokens if t["name"] == "spare")
    assert api_client.delete(f"/api/v1/tokens/{spare}", headers=w["pi"]).status_code == 204
    assert api_client.get("/api/v1/me", headers=bearer(w["pi_spare"])).status_code == 401

    shown = api_client.get("/api/v1/aup", headers=w["pi"]).json()
    assert shown["text"] == "Rule 1." and shown["accepted_at"] is None
    r = api_client.post("/api/v1/aup/accept", json={"version": 2}, headers=w["pi"])
    assert r.status_code == 409 and "not the current" in r.json()["detail"]
    r = api_client.post("/api/v1/aup/accept", json={"version": 1}, headers=w["pi"])
    assert r.status_code == 200 and r.json()["accepted_at"]
    assert api_client.post("/api/v1/jobs", json=job, headers=w["pi"]).status_code == 201
    r = api_client.post("/api/v1/proposals", json=_proposal(w), headers=w["pi"])
    assert r.status_code == 201, r.text

    assert api_client.post("/api/v1/aup", json={"text": "Rule 1 and 2."},
                           headers=w["op"]).json()["version"] == 2
    _refused(api_client.post("/api/v1/jobs", json=job, headers=w["pi"]), 2)
    assert api_client.post("/api/v1/aup/accept", json={"version": 2},
                           headers=w["pi"]).status_code == 200
    assert api_client.post("/api/v1/jobs", json=job, headers=w["pi"]).status_code == 201
    versions = api_client.get("/api/v1/aup/versions", headers=w["pi"]).json()
    assert [v["version"] for v in versions] == [2, 1] and all(v["accepted_at"]
                                                             for v in versions)
    audit = api_client.get("/api/v1/audit", params={"action": "aup."},
                           headers=w["op"]).json()["items"]
    assert sorted(e["action"] for e in audit) == ["aup.accept", "aup.accept",
                                                  "aup.publish", "aup.publish"]


def test_read_only_token_may_only_read(api_client: TestClient, session: Session) -> None:
    w = _world(session)
    r = api_client.post("/api/v1/tokens", json={"name": "dash", "scope": "read",
                                                "expires_in_days": 30}, headers=w["pi"])
    assert r.status_code == 201 and r.json()["scope"] == "read"
    ro = bearer(r.json()["token"])
    assert api_client.get("/api/v1/me", headers=ro).status_code == 200
    for method, path, body in (("POST", "/api/v1/jobs", {**SPEC, "project": w["slug"]}),
                               ("POST", "/api/v1/tokens", {"name": "more"}),
                               ("DELETE", f"/api/v1/tokens/{r.json()['id']}", None)):
        refused = api_client.request(method, path, json=body, headers=ro)
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "read_only_token"
        assert f"read-only: it may only read (GET, HEAD), not {method}" in refused.json()[
            "detail"]
        assert "--scope full" in refused.json()["hint"]
    assert api_client.get("/api/v1/jobs", headers=ro).json()["total"] == 0
    # The planner's calculators change nothing: a POST body, but open to read-only tokens.
    r = api_client.post("/api/v1/plan/train", headers=ro, json={
        "params": 7e9, "tokens": 1e11, "gpu": "A100-80GB", "gpus": 8})
    assert r.status_code == 200, r.text
    listed = {t["name"]: t["scope"] for t in
              api_client.get("/api/v1/tokens", headers=w["pi"]).json()}
    assert listed["dash"] == "read" and listed["spare"] == "full"


def test_token_options_are_checked(api_client: TestClient, session: Session) -> None:
    w = _world(session)
    for body, field in (({"name": "x", "scope": "admin"}, "scope"),
                        ({"name": "x", "expires_in_days": 400}, "expires_in_days")):
        r = api_client.post("/api/v1/tokens", json=body, headers=w["pi"])
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field


def test_operator_who_has_not_accepted_can_still_publish(api_client: TestClient,
                                                         session: Session) -> None:
    w = _world(session)
    assert api_client.post("/api/v1/aup", json={"text": "v1"},
                           headers=w["op"]).status_code == 201
    # Publishing is never gated, or a centre could not replace a policy nobody accepted.
    assert api_client.post("/api/v1/aup", json={"text": "v2"},
                           headers=w["op"]).status_code == 201
    _refused(api_client.post("/api/v1/tokens", json={"name": "x"}, headers=w["op"]), 2)
