"""Portal: the training-compute estimate box attaches its estimate to a new proposal or a
draft, the proposal page and the reviewer's page show it with the request/estimate ratio
(highlighted outside 0.5..1.3), through the ASGI app on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_pages import _hash, csrf, login, post

from factories import T0, accept_invitation, make_call, make_org, make_project, make_user
from rechenwerk.access.models import AuditEntry, Proposal
from rechenwerk.access.proposals import create_proposal, submit_proposal, visible_proposal
from rechenwerk.access.reviews import assign_reviewer
from rechenwerk.planning.schemas import estimate_from_inputs

INPUTS = {"params": 7e9, "tokens": 1e11, "gpu": "A100-80GB", "gpus": 64}
EST_HOURS = estimate_from_inputs(INPUTS).gpu_hours  # ~9,350 GPU-hours


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    sme = make_org(session, name="SME B", kind="sme")
    uni = make_org(session, name="Uni A", kind="university")
    pi = make_user(session, username="pia", org=sme, password_hash=_hash())
    op = make_user(session, username="op", org=uni, operator=True, password_hash=_hash())
    make_user(session, username="rev", org=uni, reviewer=True, password_hash=_hash())
    project = make_project(session, pi=pi, slug="alpha")
    call = make_call(session, slug="inno", access_mode="innovation", max_gpu_hours=100_000,
                     opens_at=T0 - timedelta(days=1), closes_at=T0 + timedelta(days=30))

    def proposal(title: str, hours: float, estimate: dict[str, Any] | None) -> int:
        p = create_proposal(session, pi, call=call, project=project, title=title,
                            gpu_type="A100-80GB", requested_gpu_hours=hours,
                            estimate=estimate, now=T0)
        return p.id

    draft = proposal("Draft", 9000, INPUTS)
    over, under = proposal("Too much", 20_000, INPUTS), proposal("Too little", 4000, INPUTS)
    for pid in (over, under):
        submit_proposal(session, pi, visible_proposal(session, pi, pid), now=T0)
        assign_reviewer(session, op, visible_proposal(session, op, pid),
                        reviewer="rev", now=T0)
        accept_invitation(session, "rev", visible_proposal(session, op, pid))
    session.commit()
    return {"draft": draft, "over": over, "under": under, "call": call.id}


def _estimate_box(client: Any, page: str, gpu: str = "A100-80GB", **kw: str) -> str:
    r = client.post("/proposals/estimate", data={
        "est_params": "7e9", "est_tokens": "1e11", "est_gpus": "64", "gpu_type": gpu,
        "csrf_token": csrf(page), **kw})
    assert r.status_code == 200
    return str(r.text)


def _hidden(fragment: str) -> dict[str, str]:
    """The fields the fragment adds to the proposal form, as the browser would send them."""
    fields = dict(re.findall(r'<input type="hidden" form="proposal-form" name="(\w+)" '
                             r'value="([^"]*)"', fragment))
    if re.search(r'form="proposal-form" name="attach_estimate" value="on"[^>]* checked',
                 fragment):
        fields["attach_estimate"] = "on"
    return fields


def _ratio_row(html: str) -> str:
    m = re.search(r'<tr data-testid="estimate-ratio"(.*?)</tr>', html, re.S)
    assert m, "no ratio row"
    return m.group(1)


def test_new_proposal_attaches_the_estimate_from_the_box(api_client: Any,
                                                         world: dict[str, Any],
                                                         session: Session) -> None:
    login(api_client, "pia")
    page = api_client.get("/proposals/new").text
    assert 'id="proposal-form"' in page
    fragment = _estimate_box(api_client, page)
    extra = _hidden(fragment)
    assert extra["attach_estimate"] == "on"  # on by default once computed
    assert extra["estimate_gpu"] == "A100-80GB" and extra["estimate_gpus"] == "64"
    data = {"call": str(world["call"]), "project": "alpha", "title": "Attached",
            "gpu_type": "A100-80GB", "requested_gpu_hours": "10000", "action": "draft",
            "csrf_token": csrf(page)}
    r = api_client.post("/proposals/new", data={**data, **extra}, follow_redirects=False)
    assert r.status_code == 303, r.text
    detail = api_client.get(r.headers["location"]).text
    assert "with its training-compute estimate" in detail
    assert 'data-testid="attached-estimate"' in detail
    assert f"{EST_HOURS:,.0f}" in detail and "64 \u00d7 A100-80GB" in detail
    assert "within the planner" in _ratio_row(detail)
    session.expire_all()
    p = session.scalars(select(Proposal).where(Proposal.title == "Attached")).one()
    assert p.estimate_inputs == INPUTS
    # Unticked: the proposal is saved without it.
    r = api_client.post("/proposals/new", data={
        **data, **{k: v for k, v in extra.items() if k != "attach_estimate"},
        "title": "Plain"}, follow_redirects=False)
    assert r.status_code == 303
    session.expire_all()
    plain = session.scalars(select(Proposal).where(Proposal.title == "Plain")).one()
    assert plain.estimate_inputs is None
    assert 'data-testid="attached-estimate"' not in api_client.get(
        r.headers["location"]).text
    session.commit()


def test_estimate_for_another_gpu_comes_back_with_the_box(api_client: Any,
                                                          world: dict[str, Any],
                                                          session: Session) -> None:
    login(api_client, "pia")
    page = api_client.get("/proposals/new").text
    extra = _hidden(_estimate_box(api_client, page, gpu="H100"))
    r = api_client.post("/proposals/new", data={
        "call": str(world["call"]), "project": "alpha", "title": "Mismatch",
        "gpu_type": "A100-80GB", "requested_gpu_hours": "10000", "action": "draft",
        "csrf_token": csrf(page), **extra})
    assert r.status_code == 422
    assert "estimate is for H100-SXM but the proposal asks for A100-80GB" in r.text
    # The box is shown again with its inputs and the attach box as it was.
    assert _hidden(r.text) == extra
    assert 'id="f-est_params" name="est_params" type="text" value="7000000000"' in r.text
    session.expire_all()
    assert session.scalars(select(Proposal).where(Proposal.title == "Mismatch")).first() \
        is None
    session.commit()


def test_draft_edit_replaces_and_removes_the_estimate(api_client: Any, world: dict[str, Any],
                                                      session: Session) -> None:
    login(api_client, "pia")
    url = f"/proposals/{world['draft']}"
    page = api_client.get(url).text
    assert 'data-testid="attached-estimate"' in page and 'data-testid="remove-estimate"' in page
    # the box starts from the attached inputs
    assert 'id="f-est_params" name="est_params" type="text" value="7000000000"' in page
    form = {"title": "Draft", "abstract": "", "justification": "", "gpu_type": "A100-80GB",
            "requested_gpu_hours": "9000"}
    extra = _hidden(_estimate_box(api_client, page, est_gpus="128"))
    r = post(api_client, url + "/edit", {**form, **extra}, page=url)
    assert r.status_code == 303
    page = api_client.get(url).text
    assert "(estimate changed)" in page and "128 \u00d7 A100-80GB" in page
    r = post(api_client, url + "/edit", {**form, "remove_estimate": "on"}, page=url)
    assert r.status_code == 303
    page = api_client.get(url).text
    assert 'data-testid="attached-estimate"' not in page
    assert 'data-testid="remove-estimate"' not in page
    session.expire_all()
    changes = [e.changes for e in session.scalars(select(AuditEntry).where(
        AuditEntry.action == "proposal.update").order_by(AuditEntry.id))]
    assert [list(c) for c in changes] == [["estimate"], ["estimate"]]
    assert changes[0]["estimate"][1]["inputs"]["gpus"] == 128
    assert changes[1]["estimate"][1] is None
    session.commit()


def test_reviewer_sees_the_estimate_and_the_flagged_ratio(api_client: Any,
                                                          world: dict[str, Any]) -> None:
    login(api_client, "rev")
    over = api_client.get(f"/reviews/{world['over']}").text
    assert 'data-testid="attached-estimate"' in over and 'data-testid="review-form"' in over
    row = _ratio_row(over)
    assert 'class="ratio-over"' in row and "var(--bad)" in row
    assert f"{20_000 / EST_HOURS:.2f}" in row and "more than 30 % above" in row
    row = _ratio_row(api_client.get(f"/reviews/{world['under']}").text)
    assert 'class="ratio-under"' in row and "var(--bad)" in row
    assert "less than half" in row
    # The proposal page shows the same to the reviewer (read only).
    detail = api_client.get(f"/proposals/{world['over']}").text
    assert "ratio-over" in detail and 'data-testid="remove-estimate"' not in detail


def test_the_form_shows_the_calls_cap_and_only_the_centres_gpu_types(
        api_client: Any, session: Session, world: dict[str, Any]) -> None:
    login(api_client, "pia")
    page = api_client.get("/proposals/new").text
    assert "up to 100,000 GPU-hours" in page  # in the call's option and the hours' help
    options = re.findall(r'<option value="([^"]+)"', page.split('id="f-gpu_type"', 1)[1]
                         .split("</select>", 1)[0])
    assert options == ["A100-80GB"]  # the test centre's nodes; not the whole catalogue
    # an estimate over the chosen call's cap says so and offers the cap, not the estimate
    over = _estimate_box(api_client, page, est_params="70e9", est_tokens="2e12",
                         call=str(world["call"]))
    assert 'data-testid="estimate-over-cap"' in over and "Use the call's cap, 100,000" in over
    under = _estimate_box(api_client, page, call=str(world["call"]))
    assert "estimate-over-cap" not in under and "in the proposal</button>" in under
