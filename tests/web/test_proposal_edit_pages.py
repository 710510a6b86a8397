"""Portal: the draft's edit form (field errors beside the fields, input kept, CSRF) and
withdrawing with a confirmation page, through the ASGI app on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_pages import _hash, csrf, error_of, login, post

from factories import T0, accept_invitation, make_call, make_org, make_project, make_user
from rechenwerk.access.models import AuditEntry
from rechenwerk.access.proposals import (
    create_proposal,
    decide_proposal,
    submit_proposal,
    visible_proposal,
)
from rechenwerk.access.review_pipeline import record_assessment
from rechenwerk.access.reviews import assign_reviewer
from rechenwerk.access.users import get_user


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    sme = make_org(session, name="SME B", kind="sme")
    uni = make_org(session, name="Uni A", kind="university")
    pi = make_user(session, username="pia", org=sme, password_hash=_hash())
    member = make_user(session, username="mem", org=sme, password_hash=_hash())
    op = make_user(session, username="op", org=uni, operator=True, password_hash=_hash())
    make_user(session, username="rev", org=uni, reviewer=True, password_hash=_hash())
    project = make_project(session, pi=pi, slug="alpha", members={member: "member"})
    call = make_call(session, slug="inno", access_mode="innovation", max_gpu_hours=1000,
                     opens_at=T0 - timedelta(days=1), closes_at=T0 + timedelta(days=30))

    def proposal(title: str) -> int:
        p = create_proposal(session, pi, call=call, project=project, title=title,
                            gpu_type="A100-80GB", requested_gpu_hours=500,
                            abstract="We train.", now=T0)
        return p.id

    draft, submitted = proposal("Draft one"), proposal("Submitted one")
    submit_proposal(session, pi, visible_proposal(session, pi, submitted), now=T0)
    assign_reviewer(session, op, visible_proposal(session, op, submitted),
                    reviewer="rev", now=T0)
    accept_invitation(session, "rev", visible_proposal(session, op, submitted))
    session.commit()
    return {"draft": draft, "submitted": submitted}


def _form_values(html: str) -> dict[str, str]:
    out = {m.group(1): m.group(2) for m in re.finditer(
        r'<input id="f-(\w+)" name="\w+" type="[a-z]+" value="([^"]*)"', html)}
    out.update({m.group(1): m.group(2) for m in re.finditer(
        r'<textarea id="f-(\w+)" name="\w+"[^>]*>([^<]*)</textarea>', html)})
    return out


def test_pi_edits_a_draft_with_field_errors_then_saves(api_client: Any, world: dict[str, Any],
                                                       session: Session) -> None:
    login(api_client, "pia")
    url = f"/proposals/{world['draft']}"
    page = api_client.get(url).text
    assert 'data-testid="edit-form"' in page and "At most 1,000 in this call." in page
    values = _form_values(page)
    assert values["title"] == "Draft one" and values["requested_gpu_hours"] == "500"
    assert 'data-testid="withdraw-link"' in page
    data = {"title": "", "abstract": "A better abstract.", "justification": "",
            "gpu_type": "A100-80GB", "requested_gpu_hours": "lots", "csrf_token": csrf(page)}
    r = api_client.post(url + "/edit", data=data)
    assert r.status_code == 422
    assert "required" in error_of(r.text, "title")
    assert "must be a number" in error_of(r.text, "requested_gpu_hours")
    assert "A better abstract." in r.text and 'value="lots"' in r.text  # input kept
    r = api_client.post(url + "/edit", data={**data, "title": "Draft two",
                                             "requested_gpu_hours": "5,000"})
    assert r.status_code == 422
    assert "maximum of 1000" in error_of(r.text, "requested_gpu_hours")
    assert 'value="Draft two"' in r.text
    r = api_client.post(url + "/edit", data={**data, "title": "Draft two",
                                             "requested_gpu_hours": "750"},
                        follow_redirects=False)
    assert r.status_code == 303
    detail = api_client.get(url).text
    assert "Draft two" in detail and "750" in detail and "A better abstract." in detail
    session.expire_all()
    entry = session.scalars(select(AuditEntry).where(
        AuditEntry.action == "proposal.update")).one()
    assert entry.changes == {"title": ["Draft one", "Draft two"],
                             "abstract": ["We train.", "A better abstract."],
                             "requested_gpu_hours": [500.0, 750.0]}
    session.commit()


def test_edit_form_only_for_the_pi_and_only_for_drafts(api_client: Any,
                                                       world: dict[str, Any]) -> None:
    login(api_client, "mem")
    url = f"/proposals/{world['draft']}"
    page = api_client.get(url).text
    assert 'data-testid="edit-form"' not in page and "withdraw-link" not in page
    r = api_client.post(url + "/edit", data={"title": "Mine", "gpu_type": "A100-80GB",
                                             "requested_gpu_hours": "10",
                                             "csrf_token": csrf(page)})
    assert r.status_code == 403 and "only the PI" in r.text
    login(api_client, "pia")
    url = f"/proposals/{world['submitted']}"
    page = api_client.get(url).text
    assert 'data-testid="edit-form"' not in page and "withdraw-link" in page
    r = post(api_client, url + "/edit", {"title": "Late", "gpu_type": "A100-80GB",
                                         "requested_gpu_hours": "10"}, page=url)
    assert r.status_code == 409 and "only drafts can be edited" in r.text
    assert "Withdraw it and write a new proposal" in r.text


def test_withdraw_with_confirmation(api_client: Any, world: dict[str, Any],
                                    session: Session) -> None:
    login(api_client, "pia")
    url = f"/proposals/{world['submitted']}"
    confirm = api_client.get(url + "/withdraw")
    assert confirm.status_code == 200 and "Withdrawing is final" in confirm.text
    assert "1 open review will no longer be requested" in confirm.text
    r = api_client.post(url + "/withdraw", data={"reason": "x"})  # no CSRF token
    assert r.status_code == 403
    r = post(api_client, url + "/withdraw", {"reason": "Got a grant elsewhere"},
             page=url + "/withdraw")
    assert r.status_code == 303 and r.headers["location"] == url
    detail = api_client.get(url).text
    assert 'data-testid="withdrawal"' in detail and 'class="badge withdrawn"' in detail
    assert "withdraw-link" not in detail
    listing = api_client.get("/proposals?state=withdrawn").text
    assert "Submitted one" in listing and "Draft one" not in listing
    assert '<option value="withdrawn" selected>' in listing
    r = post(api_client, url + "/withdraw", {}, page=url + "/withdraw")
    assert r.status_code == 409 and "already withdrawn" in r.text
    session.expire_all()
    entry = session.scalars(select(AuditEntry).where(
        AuditEntry.action == "proposal.withdrawn")).one()
    assert entry.changes["reason"] == "Got a grant elsewhere"
    session.commit()

    # The reviewer: off the assigned list, the review page says so, a review is refused.
    login(api_client, "rev")
    assert "Submitted one" not in api_client.get("/reviews").text
    assert 'data-testid="work-reviews"' not in api_client.get("/").text
    review_url = f"/reviews/{world['submitted']}"
    page = api_client.get(review_url).text
    assert 'data-testid="review-withdrawn"' in page and "review-form" not in page
    r = api_client.post(review_url, data={"technical_score": "4", "scientific_score": "4",
                                          "csrf_token": csrf(page)})
    assert r.status_code == 409 and "no longer requested" in r.text


def test_decided_proposal_offers_no_withdrawal(api_client: Any, world: dict[str, Any],
                                               session: Session) -> None:
    op = get_user(session, "op")
    proposal = visible_proposal(session, op, world["submitted"])
    record_assessment(session, op, proposal, step="eligibility", outcome="fail",
                      note="not eligible", now=T0)
    decide_proposal(session, op, proposal, decision="rejected", now=T0)
    session.commit()
    login(api_client, "pia")
    url = f"/proposals/{world['submitted']}"
    assert "withdraw-link" not in api_client.get(url).text
    page = api_client.get(url + "/withdraw").text
    assert "can no longer be withdrawn" in page and "confirm-withdraw" not in page
    r = post(api_client, url + "/withdraw", {}, page=url)
    assert r.status_code == 409 and "cannot be withdrawn" in r.text
