"""Portal: one submission of a proposal form reports every mistake at once, each beside
its field (aria-invalid, in words) with the input kept: a missing title together with a
request over the call's cap, an unknown GPU type, a call the organisation may not apply
to. Issue 18 item 3."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session
from test_pages import _hash, csrf, error_of, login

from factories import T0, make_call, make_org, make_project, make_user
from rechenwerk.access.proposals import create_proposal


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    sme = make_org(session, name="SME B", kind="sme")
    pi = make_user(session, username="pia", org=sme, password_hash=_hash())
    project = make_project(session, pi=pi, slug="alpha")
    call = make_call(session, slug="inno", access_mode="innovation", max_gpu_hours=1000,
                     opens_at=T0 - timedelta(days=1), closes_at=T0 + timedelta(days=30))
    closed_to_smes = make_call(session, slug="unis", access_mode="innovation",
                               eligible_kinds=["university"], max_gpu_hours=1000,
                               opens_at=T0 - timedelta(days=1),
                               closes_at=T0 + timedelta(days=30))
    draft = create_proposal(session, pi, call=call, project=project, title="Draft one",
                            gpu_type="A100-80GB", requested_gpu_hours=500, now=T0)
    session.commit()
    return {"call": call.id, "unis": closed_to_smes.id, "draft": draft.id}


def _error(page: str, name: str) -> str:
    return html.unescape(error_of(page, name))


def _invalid(html: str, name: str) -> bool:
    return re.search(rf'id="f-{name}" name="{name}"[^>]*aria-invalid="true"', html) is not None


def test_new_proposal_reports_every_mistake_in_one_round(api_client: Any,
                                                         world: dict[str, Any]) -> None:
    login(api_client, "pia")
    page = api_client.get("/proposals/new").text
    data = {"call": str(world["call"]), "project": "alpha", "title": "",
            "gpu_type": "Z9000", "requested_gpu_hours": "5,000", "duration_months": "0",
            "abstract": "We train.", "justification": "Scaling laws.", "action": "submit",
            "csrf_token": csrf(page)}
    r = api_client.post("/proposals/new", data=data)
    assert r.status_code == 422
    assert _error(r.text, "title") == "Title is required"
    assert "exceed the call's maximum of 1000" in _error(r.text, "requested_gpu_hours")
    assert "unknown GPU type 'Z9000'" in _error(r.text, "gpu_type")
    assert "at least 1" in _error(r.text, "duration_months")
    for name in ("title", "requested_gpu_hours", "gpu_type", "duration_months"):
        assert _invalid(r.text, name), name
    assert not _invalid(r.text, "call") and not _invalid(r.text, "project")
    # the input is kept
    assert 'value="5,000"' in r.text and "We train." in r.text and "Scaling laws." in r.text
    # fixing them all at once is enough: no second round of new mistakes
    r = api_client.post("/proposals/new", data={
        **data, "title": "LLM", "gpu_type": "A100-80GB", "requested_gpu_hours": "900",
        "duration_months": ""}, follow_redirects=False)
    assert r.status_code == 303, _error(r.text, "_form")


def test_an_ineligible_call_is_reported_with_the_field_mistakes(
        api_client: Any, world: dict[str, Any]) -> None:
    login(api_client, "pia")
    page = api_client.get("/proposals/new").text
    r = api_client.post("/proposals/new", data={
        "call": str(world["unis"]), "project": "alpha", "title": "",
        "gpu_type": "A100-80GB", "requested_gpu_hours": "lots", "action": "draft",
        "csrf_token": csrf(page)})
    assert r.status_code == 422
    assert "kind 'sme' are not eligible for call 'unis'" in _error(r.text, "call")
    assert "Choose another call" in _error(r.text, "call")
    assert _error(r.text, "title") == "Title is required"
    assert "must be a number" in _error(r.text, "requested_gpu_hours")
    assert all(_invalid(r.text, n) for n in ("call", "title", "requested_gpu_hours"))
    assert 'value="lots"' in r.text


def test_draft_edit_reports_every_mistake_in_one_round(api_client: Any,
                                                       world: dict[str, Any]) -> None:
    login(api_client, "pia")
    url = f"/proposals/{world['draft']}"
    page = api_client.get(url).text
    r = api_client.post(url + "/edit", data={
        "title": "", "abstract": "A better abstract.", "gpu_type": "Z9000",
        "requested_gpu_hours": "5000", "csrf_token": csrf(page)})
    assert r.status_code == 422
    assert _error(r.text, "title") == "Title is required"
    assert "exceed the call's maximum of 1000" in _error(r.text, "requested_gpu_hours")
    assert "unknown GPU type 'Z9000'" in _error(r.text, "gpu_type")
    assert all(_invalid(r.text, n) for n in ("title", "requested_gpu_hours"))
    assert 'value="5000"' in r.text and "A better abstract." in r.text
