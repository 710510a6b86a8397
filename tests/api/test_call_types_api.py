"""Call types through the REST API: operators create them (every mistake named at once),
everyone reads them, calls carry their type, proposals get their due date on submission
from the server's holiday calendar, and the overdue filter finds late decisions."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from factories import bearer, make_org, make_project, make_token, make_user
from rechenwerk.access.call_type_rules import EUROHPC_TYPES
from rechenwerk.access.models import CallType, Proposal
from rechenwerk.clock import FakeClock

FAST_LANE = {k: list(v) if isinstance(v, tuple) else v
             for k, v in asdict(next(t for t in EUROHPC_TYPES if t.key == "fast-lane")).items()}


@pytest.fixture
def api_settings() -> dict[str, Any]:
    return {"holidays": "2026-01-05"}  # a Monday


@pytest.fixture
def world(session: Session) -> dict[str, str]:
    centre = make_org(session, kind="public_agency")
    op = make_user(session, username="olga", org=centre, operator=True)
    pi = make_user(session, username="pia", org=make_org(session, kind="startup",
                                                        country="FR"))
    make_project(session, pi=pi, slug="lumen")
    out = {"op": make_token(session, op), "pi": make_token(session, pi)}
    session.commit()
    return out


def test_call_types_through_the_api(api_client: TestClient, world: dict[str, str],
                                    session: Session, clock: FakeClock) -> None:
    c, op, pi = api_client, bearer(world["op"]), bearer(world["pi"])
    r = c.post("/api/v1/call-types", headers=op, json=FAST_LANE)
    assert r.status_code == 201, r.text
    assert r.json()["duration_months"] == [1, 2, 3] and r.json()["max_gpu_hours"] == 50_000
    assert c.post("/api/v1/call-types", headers=op, json=FAST_LANE).status_code == 409
    assert c.post("/api/v1/call-types", headers=pi, json={**FAST_LANE, "key": "k2"}
                  ).status_code == 403
    bad = c.post("/api/v1/call-types", headers=op, json={
        **FAST_LANE, "key": "lane-2", "min_gpu_hours": 60_000, "review_steps": ["nope"],
        "countries": "mars", "eligible_kinds": ["pirates"]})
    assert bad.status_code == 422
    fields = {e["field"] for e in bad.json()["errors"]}
    assert "eligible_kinds.0" in fields  # the enum, refused by the schema
    bad = c.post("/api/v1/call-types", headers=op, json={
        **FAST_LANE, "key": "lane-2", "min_gpu_hours": 60_000, "review_steps": ["nope"],
        "countries": "mars"})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"max_gpu_hours", "review_steps.0",
                                                         "countries"}
    assert session.scalar(select(func.count()).select_from(CallType)) == 1
    session.rollback()
    listed = c.get("/api/v1/call-types", headers=pi).json()
    assert [t["key"] for t in listed["items"]] == ["fast-lane"]
    assert c.get("/api/v1/call-types/nope", headers=pi).status_code == 404

    r = c.post("/api/v1/calls", headers=op, json={
        "slug": "fl", "title": "Fast Lane", "access_mode": "fast_lane",
        "call_type": "fast-lane", "closes_at": "2026-06-01T00:00:00Z"})
    assert r.status_code == 201, r.text
    assert r.json()["call_type"]["key"] == "fast-lane"
    body = {"call": "fl", "project": "lumen", "title": "t", "gpu_type": "A100-80GB",
            "requested_gpu_hours": 1000}
    draft = c.post("/api/v1/proposals", headers=pi, json=body).json()
    assert draft["duration_months"] is None and draft["call_type"] == "fast-lane"
    refused = c.post(f"/api/v1/proposals/{draft['id']}/submit", headers=pi)
    assert refused.status_code == 422 and "duration_months" in refused.text
    assert "proposal edit" in refused.json()["hint"]
    assert c.patch(f"/api/v1/proposals/{draft['id']}", headers=pi,
                   json={"duration_months": 2}).status_code == 200
    submitted = c.post(f"/api/v1/proposals/{draft['id']}/submit", headers=pi).json()
    # Thursday 1 January 2026 + 4 working days, the Monday a holiday: Thursday 8th.
    assert submitted["due_on"] == "2026-01-08" and submitted["overdue"] is False
    assert c.get("/api/v1/proposals?overdue=true", headers=op).json()["total"] == 0

    clock.advance(8 * 86400)  # 9 January: the decision is late
    late = c.get("/api/v1/proposals?overdue=true", headers=op).json()
    assert [p["id"] for p in late["items"]] == [draft["id"]] and late["items"][0]["overdue"]
    assert session.scalar(select(Proposal.due_on)).isoformat() == "2026-01-08"
