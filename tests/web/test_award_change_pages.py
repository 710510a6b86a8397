"""Portal: a PI asks for a supplement on the award's page (mistakes beside the fields,
input kept), the operator's dashboard counts the request, the operator grants part of
it with a note on the requests page, and the award page shows the new version."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session
from test_pages import _hash, csrf, error_of, login

from factories import T0, make_org, make_project, make_user
from rechenwerk.access.awards import create_award


@pytest.fixture
def award_id(session: Session) -> int:
    org = make_org(session, kind="university")
    op = make_user(session, username="op", operator=True, password_hash=_hash())
    pi = make_user(session, username="pia", org=org, password_hash=_hash())
    make_user(session, username="mo", org=org, password_hash=_hash())
    project = make_project(session, pi=pi, slug="alpha")
    award = create_award(session, op, project=project, gpu_hours=4000,
                         starts_at=T0 - timedelta(days=10), gpu_type="A100-80GB",
                         period_count=2, period_months=3, now=T0)
    session.commit()
    return award.id


def test_request_decide_and_history_in_the_portal(api_client: Any, award_id: int) -> None:
    c = login(api_client, "pia")
    assert f'href="/awards/{award_id}"' in c.get("/projects/alpha").text
    page = c.get(f"/awards/{award_id}").text
    assert 'data-testid="change-form"' in page and "No change requested." in page
    url = f"/awards/{award_id}/changes"
    r = c.post(url, data={"kind": "supplement", "gpu_hours": "lots", "reason": "",
                          "csrf_token": csrf(page)})
    assert r.status_code == 422 and "must be a number" in error_of(r.text, "gpu_hours")
    r = c.post(url, data={"kind": "supplement", "gpu_hours": "1000", "reason": "",
                          "until": "", "csrf_token": csrf(page)})
    assert r.status_code == 422 and "say why" in error_of(r.text, "reason")
    assert 'value="1000"' in r.text  # input kept
    r = c.post(url, data={"kind": "supplement", "gpu_hours": "1000", "until": "",
                          "reason": "A second epoch.", "csrf_token": csrf(page)},
               follow_redirects=False)
    assert r.status_code == 303
    assert "A second epoch." in c.get(f"/awards/{award_id}").text

    c = login(api_client, "op")
    assert "1 award change request waits for a decision" in c.get("/").text
    queue = c.get("/award-changes").text
    assert "A second epoch." in queue
    change_id = int(queue.split('data-testid="change-', 1)[1].split('"', 1)[0])
    r = c.post(f"/award-changes/{change_id}/decision",
               data={"decision": "approved", "gpu_hours": "600", "note": "",
                     "csrf_token": csrf(queue)})
    assert r.status_code == 422 and "say why" in error_of(r.text, "note")
    r = c.post(f"/award-changes/{change_id}/decision",
               data={"decision": "approved", "gpu_hours": "600", "note": "600 this time.",
                     "csrf_token": csrf(queue)}, follow_redirects=False)
    assert r.status_code == 303
    assert "No request requested." in c.get("/award-changes").text

    c = login(api_client, "pia")
    page = c.get(f"/awards/{award_id}").text
    assert "4,600 GPU-hours" in page and "version 2" in page
    assert "600 this time." in page and "change #" in page


def test_members_cannot_request_and_strangers_see_nothing(api_client: Any,
                                                          award_id: int) -> None:
    c = login(api_client, "mo")  # same organisation, not a member
    assert c.get(f"/awards/{award_id}").status_code == 404
