"""A proposal's training-compute estimate through the API (SQLite and PostgreSQL): create
with one, the key results and the request/estimate ratio in ``ProposalOut``, PATCH
replaces it and ``null`` removes it, bad inputs are 422 problems naming
``estimate.<field>``, and reviewers see it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from factories import bearer, make_call, make_org, make_project, make_token, make_user
from rechenwerk.planning.schemas import estimate_from_inputs

INPUTS = {"params": 7e9, "tokens": 1e11, "gpu": "A100-80GB", "gpus": 64}


@pytest.fixture
def w(session: Session) -> dict[str, Any]:
    sme = make_org(session, kind="sme")
    uni = make_org(session, kind="university")
    users = {"pi": make_user(session, username="pia", org=sme),
             "op": make_user(session, username="op", org=uni, operator=True),
             "rev": make_user(session, username="rev", org=uni, reviewer=True)}
    make_project(session, pi=users["pi"], slug="alpha")
    make_call(session, slug="inno", access_mode="innovation", max_gpu_hours=100_000)
    tokens = {name: bearer(make_token(session, u)) for name, u in users.items()}
    session.commit()
    return tokens


def _create(client: TestClient, t: dict[str, Any], **kw: Any) -> Any:
    return client.post("/api/v1/proposals", headers=t["pi"], json={
        "call": "inno", "project": "alpha", "title": "LLM", "gpu_type": "A100-80GB",
        "requested_gpu_hours": 20_000, **kw})


def test_create_with_estimate_shows_results_and_ratio(api_client: TestClient,
                                                      w: dict[str, Any]) -> None:
    expected = estimate_from_inputs(INPUTS).to_dict()
    r = _create(api_client, w, estimate=INPUTS)
    assert r.status_code == 201, r.text
    body = r.json()
    est = body["estimate"]
    assert est["inputs"] == INPUTS
    assert (est["gpu"], est["gpus"], est["gpu_hours"]) == ("A100-80GB", 64,
                                                           expected["gpu_hours"])
    assert est["wall_clock_days"] == expected["wall_clock_days"]
    assert (est["energy_mwh"], est["co2_t"]) == (expected["energy_mwh"], expected["co2_t"])
    assert est["memory_feasible"] is True and est["memory_message"].startswith("fits")
    assert est["warnings"] == expected["warnings"] and est["result"] == expected
    assert est["attached_at"]
    assert body["requested_vs_estimate"] == round(20_000 / expected["gpu_hours"], 3)
    assert est["request_check"] == "over"  # 20,000 vs ~9,350 GPU-hours
    fits = _create(api_client, w, estimate=INPUTS, requested_gpu_hours=10_000).json()
    assert fits["estimate"]["request_check"] == "ok"
    assert 1.0 < fits["requested_vs_estimate"] < 1.3
    plain = _create(api_client, w).json()
    assert plain["estimate"] is None and plain["requested_vs_estimate"] is None


def test_bad_estimate_is_a_422_problem_naming_the_field(api_client: TestClient,
                                                        w: dict[str, Any]) -> None:
    # Schema errors (FastAPI) and planner errors (the service) name the nested field alike.
    for estimate, field in (({**INPUTS, "gpus": "many"}, "estimate.gpus"),
                            ({"gpu": "A100-80GB", "gpus": 8}, "estimate.params"),
                            ({**INPUTS, "gpu": "Z80"}, "estimate.gpu"),
                            ({**INPUTS, "gpus": 0}, "estimate.gpus"),
                            ({**INPUTS, "gpu": "H100"}, "estimate.gpu")):
        r = _create(api_client, w, estimate=estimate)
        assert r.status_code == 422, (estimate, r.text)
        problem = r.json()
        assert r.headers["content-type"].startswith("application/problem+json")
        assert problem["code"] == "invalid_input"
        assert problem["errors"][0]["field"] == field, problem
    mismatch = _create(api_client, w, estimate={**INPUTS, "gpu": "H100"}).json()
    assert "estimate is for H100-SXM but the proposal asks for A100-80GB" in mismatch["detail"]
    assert api_client.get("/api/v1/proposals", headers=w["pi"]).json()["total"] == 0


def test_patch_replaces_and_null_removes(api_client: TestClient, w: dict[str, Any]) -> None:
    p = _create(api_client, w, estimate=INPUTS).json()
    url = f"/api/v1/proposals/{p['id']}"
    r = api_client.patch(url, headers=w["pi"], json={"estimate": {**INPUTS, "gpus": 128}})
    assert r.status_code == 200, r.text
    assert r.json()["estimate"]["inputs"]["gpus"] == 128
    # Other fields leave the estimate alone; the ratio follows the request.
    r = api_client.patch(url, headers=w["pi"], json={"requested_gpu_hours": 1000})
    est = r.json()["estimate"]
    assert est["inputs"]["gpus"] == 128
    assert r.json()["requested_vs_estimate"] == round(1000 / est["gpu_hours"], 3)
    bad = api_client.patch(url, headers=w["pi"], json={"gpu_type": "H100"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "gpu_type"
    assert "attached estimate is for A100-80GB" in bad.json()["detail"]
    r = api_client.patch(url, headers=w["pi"], json={"estimate": None})
    assert r.status_code == 200
    assert r.json()["estimate"] is None and r.json()["requested_vs_estimate"] is None
    audit = api_client.get("/api/v1/audit", headers=w["op"], params={
        "entity": "proposal", "action": "proposal.update"}).json()["items"]
    estimate_changes = [e["changes"]["estimate"] for e in audit if "estimate" in e["changes"]]
    assert len(estimate_changes) == 2
    assert {tuple(c[i] is None for i in (0, 1)) for c in estimate_changes} == {
        (False, False), (False, True)}


def test_after_submission_the_estimate_is_fixed_and_reviewers_see_it(
        api_client: TestClient, w: dict[str, Any]) -> None:
    p = _create(api_client, w, estimate=INPUTS).json()
    url = f"/api/v1/proposals/{p['id']}"
    assert api_client.post(url + "/submit", headers=w["pi"]).status_code == 200
    r = api_client.patch(url, headers=w["pi"], json={"estimate": None})
    assert r.status_code == 409 and "only drafts can be edited" in r.json()["detail"]
    assert api_client.post(url + "/reviewers", headers=w["op"],
                           json={"reviewer": "rev"}).status_code == 201
    seen = api_client.get(url, headers=w["rev"]).json()
    assert seen["estimate"]["inputs"] == INPUTS
    assert seen["requested_vs_estimate"] == p["requested_vs_estimate"]
