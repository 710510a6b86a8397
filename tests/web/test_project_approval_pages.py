"""Project approval (issue 18 item 1): where the centre approves new projects, a PI's
project waits; until an operator approves it, it runs no jobs, applies for no GPU-hours
and receives no award (409 naming the project); operators decide in the API and the
portal, a rejection needs a note; with the setting off nothing changes."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from test_pages import _hash, csrf, error_of, login

from factories import T0, bearer, make_call, make_org, make_token, make_user

JOB = {"name": "train", "command": "true", "gpus": 1, "walltime": "10m"}


@pytest.fixture
def api_settings() -> dict[str, Any]:
    return {"project_approval": True}


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    org = make_org(session, kind="university")
    op = make_user(session, username="op", operator=True, password_hash=_hash())
    pi = make_user(session, username="pia", org=org, password_hash=_hash())
    make_call(session, slug="res", access_mode="research", opens_at=T0 - timedelta(days=1),
              closes_at=T0 + timedelta(days=30))
    out = {"op": bearer(make_token(session, op)), "pi": bearer(make_token(session, pi))}
    session.commit()
    return out


def test_a_pending_project_waits_for_an_operator(api_client: TestClient,
                                                 world: dict[str, Any]) -> None:
    c, op, pi = api_client, world["op"], world["pi"]
    r = c.post("/api/v1/projects", headers=pi, json={"slug": "alpha", "title": "Alpha"})
    assert r.status_code == 201 and r.json()["approval"] == "pending"
    for path, body in (("/api/v1/jobs", {**JOB, "project": "alpha"}),
                       ("/api/v1/proposals", {"call": "res", "project": "alpha", "title": "t",
                                              "gpu_type": "A100-80GB",
                                              "requested_gpu_hours": 100}),
                       ("/api/v1/awards", {"project": "alpha", "gpu_hours": 100,
                                           "gpu_type": "A100-80GB",
                                           "starts_at": "2026-01-01T00:00:00Z"})):
        r = c.post(path, headers=op if path.endswith("awards") else pi, json=body)
        assert r.status_code == 409, (path, r.text)
        assert "waits for an operator's approval" in r.json()["detail"]
        assert "project approve alpha" in r.json()["hint"]
    listed = c.get("/api/v1/projects?approval=pending", headers=op).json()
    assert [p["slug"] for p in listed["items"]] == ["alpha"]
    r = c.post("/api/v1/projects/alpha/approval", headers=pi, json={"decision": "approved"})
    assert r.status_code == 403
    r = c.post("/api/v1/projects/alpha/approval", headers=op, json={"decision": "rejected"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "note"
    r = c.post("/api/v1/projects/alpha/approval", headers=op,
               json={"decision": "approved", "note": "Welcome."})
    assert r.status_code == 200 and r.json()["approval"] == "approved"
    r = c.post("/api/v1/projects/alpha/approval", headers=op, json={"decision": "rejected",
                                                                    "note": "no"})
    assert r.status_code == 409  # an approved project is not rejected afterwards
    r = c.post("/api/v1/proposals", headers=pi, json={
        "call": "res", "project": "alpha", "title": "t", "gpu_type": "A100-80GB",
        "requested_gpu_hours": 100})
    assert r.status_code == 201, r.text
    # operators' own projects need no approval
    r = c.post("/api/v1/projects", headers=op, json={"slug": "ops-tests", "title": "T",
                                                     "pi": "pia"})
    assert r.status_code == 201 and r.json()["approval"] == "approved"


def test_operators_decide_in_the_portal(api_client: TestClient, world: dict[str, Any]) -> None:
    api_client.post("/api/v1/projects", headers=world["pi"],
                    json={"slug": "beta", "title": "Beta", "description": "LLM work"})
    c = login(api_client, "pia")
    page = c.get("/projects/beta").text
    assert 'data-testid="project-approval"' in page and "waits for an operator" in page
    assert 'href="/jobs/new?project=beta"' not in page  # no "Submit a job" yet
    c = login(api_client, "op")
    assert "1 new project waits for approval" in c.get("/").text
    listing = c.get("/ops/projects").text
    assert 'data-testid="approve-beta"' in listing and "LLM work" in listing
    r = c.post("/ops/projects/beta/approval", data={"decision": "rejected", "note": "",
                                                     "csrf_token": csrf(listing)})
    assert r.status_code == 422 and "say why" in error_of(r.text, "note")
    r = c.post("/ops/projects/beta/approval", data={"decision": "rejected",
                                                     "note": "Describe the data first.",
                                                     "csrf_token": csrf(listing)},
               follow_redirects=False)
    assert r.status_code == 303
    c = login(api_client, "pia")
    assert "Describe the data first." in c.get("/projects/beta").text


def test_the_project_page_offers_its_pi_a_proposal_once_approved(
        api_client: TestClient, world: dict[str, Any]) -> None:
    api_client.post("/api/v1/projects", headers=world["pi"], json={"slug": "gamma",
                                                                   "title": "Gamma"})
    c = login(api_client, "pia")
    link = 'href="/proposals/new?project=gamma"'
    assert link not in c.get("/projects/gamma").text  # pending: it applies for nothing
    r = api_client.post("/api/v1/projects/gamma/approval", headers=world["op"],
                        json={"decision": "approved"})
    assert r.status_code == 200, r.text
    c = login(api_client, "pia")
    assert link in c.get("/projects/gamma").text
    form = c.get("/proposals/new?project=gamma").text
    assert re.search(r'<option value="gamma"\s+selected', form)  # the project chosen
    c = login(api_client, "op")  # an operator is no PI: no proposal of theirs
    assert link not in c.get("/projects/gamma").text
