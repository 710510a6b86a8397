"""Portal: the proposal form shows what each open call's type asks, a proposal that does
not fit comes back with every mistake beside its field (nothing stored), the proposal
page shows its decision due date, and an overdue decision reaches the operator's
dashboard and the filtered list (SQLite and PostgreSQL, through the ASGI app)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_pages import _hash, csrf, error_of, login

from factories import T0, make_call, make_org, make_project, make_user
from rechenwerk.access.call_type_rules import EUROHPC_TYPES
from rechenwerk.access.call_types import ensure_call_types
from rechenwerk.access.models import Proposal
from rechenwerk.access.proposals import create_proposal
from rechenwerk.clock import FakeClock


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    op = make_user(session, username="op", operator=True, password_hash=_hash())
    pi = make_user(session, username="pia", org=make_org(session, kind="startup",
                                                        country="FR"), password_hash=_hash())
    project = make_project(session, pi=pi, slug="lumen")
    (fast,) = ensure_call_types(session, op, [t for t in EUROHPC_TYPES
                                              if t.key == "fast-lane"], now=T0)
    call = make_call(session, slug="fl", access_mode="fast_lane", call_type=fast,
                     eligible_kinds=["sme", "startup"], opens_at=T0 - timedelta(days=1),
                     closes_at=T0 + timedelta(days=90))
    draft = create_proposal(session, pi, call=call, project=project, title="No duration",
                            gpu_type="A100-80GB", requested_gpu_hours=500, now=T0)
    session.commit()
    return {"call": call.id, "draft": draft.id}


def _new(client: Any, call: int, **fields: str) -> Any:
    page = client.get("/proposals/new").text
    data = {"call": str(call), "project": "lumen", "title": "Pre-train", "gpu_type":
            "A100-80GB", "requested_gpu_hours": "1000", "duration_months": "",
            "action": "submit", "csrf_token": csrf(page), **fields}
    return client.post("/proposals/new", data=data, follow_redirects=False)


def test_the_form_shows_the_rules_and_names_every_mistake(api_client: Any, session: Session,
                                                          world: dict[str, Any]) -> None:
    login(api_client, "pia")
    page = api_client.get("/proposals/new").text
    assert 'data-testid="call-rules"' in page
    assert "decision within 4 working days of submission" in page
    assert "1, 2, 3 months" in page
    r = _new(api_client, world["call"], requested_gpu_hours="60000", duration_months="6")
    assert r.status_code == 422
    assert "exceed the maximum of 50000 of call type &#39;fast-lane&#39;" in error_of(
        r.text, "requested_gpu_hours")
    assert "6 months is not allowed" in error_of(r.text, "duration_months")
    r = _new(api_client, world["call"])  # submitting without the duration the type asks
    assert r.status_code == 422
    assert "is required by call type &#39;fast-lane&#39;" in error_of(r.text, "duration_months")
    assert 'value="Pre-train"' in r.text  # input kept
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Proposal)) == 1  # the fixture's


def test_due_date_and_overdue_for_operators(api_client: Any, session: Session,
                                            world: dict[str, Any], clock: FakeClock) -> None:
    login(api_client, "pia")
    # The draft page's submit refuses a draft without its duration, beside the field.
    detail = api_client.get(f"/proposals/{world['draft']}").text
    r = api_client.post(f"/proposals/{world['draft']}/submit",
                        data={"csrf_token": csrf(detail)}, follow_redirects=False)
    assert r.status_code == 422
    assert "is required" in error_of(r.text, "duration_months")
    r = _new(api_client, world["call"], duration_months="2")
    assert r.status_code == 303, r.text
    page = api_client.get(r.headers["location"]).text
    # Thursday 1 January 2026 + 4 working days = Wednesday 7 January.
    assert 'data-testid="due-on">2026-01-07' in page and 'data-testid="overdue"' not in page
    assert "Fast Lane" in page and "2 months" in page

    clock.advance(7 * 86400)  # 8 January: the decision is one day late
    login(api_client, "op")
    dashboard = api_client.get("/").text
    assert "1 proposal is past the decision deadline of their call type" in dashboard
    assert "/proposals?overdue=true" in dashboard
    late = api_client.get("/proposals?overdue=true").text
    assert "Pre-train" in late and "No duration" not in late
    assert 'data-testid="overdue"' in late
    assert "No duration" in api_client.get("/proposals").text
