"""Conflict of interest at every review action (access/reviews.py conflict_of_interest):
a reviewer assigned without a conflict who later joins the applying project or moves to
the applicant's organisation may no longer submit the review (API, service, portal)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from factories import (
    T0,
    accept_invitation,
    bearer,
    make_call,
    make_org,
    make_project,
    make_token,
    make_user,
)
from rechenwerk.access.models import ProjectMembership, Proposal, Review, User
from rechenwerk.access.proposals import create_proposal, submit_proposal
from rechenwerk.access.reviews import assign_reviewer, submit_review
from rechenwerk.access.security import hash_password
from rechenwerk.errors import Conflict

PASSWORD = "reviewer-password"


def _assigned(session: Session) -> tuple[Proposal, User]:
    """A proposal under review with a reviewer from another organisation."""
    op = make_user(session, operator=True)
    uni = make_org(session, name="Uni Applicant")
    pi = make_user(session, org=uni)
    reviewer = make_user(session, org=make_org(session, name="Elsewhere Institute"),
                         reviewer=True, password_hash=hash_password(PASSWORD))
    project = make_project(session, pi=pi, slug="alpha")
    p = create_proposal(session, pi, call=make_call(session), project=project, title="t",
                        gpu_type="H100", requested_gpu_hours=1, now=T0)
    submit_proposal(session, pi, p, now=T0)
    assign_reviewer(session, op, p, reviewer=reviewer.username, now=T0)
    accept_invitation(session, reviewer, p)
    session.flush()
    return p, reviewer


def _join_project(session: Session, p: Proposal, reviewer: User) -> None:
    session.add(ProjectMembership(project_id=p.project_id, user_id=reviewer.id,
                                  role="member", created_at=T0))
    session.flush()


def _move_to_applicant_org(session: Session, p: Proposal, reviewer: User) -> None:
    reviewer.organization_id = p.project.organization_id
    session.flush()
    session.expire(reviewer, ["organization"])


CHANGES = {"joins the project": (_join_project, "are a member of the applying project 'alpha'"),
           "moves to the applicant's organisation":
               (_move_to_applicant_org, "belong to the applicant's organisation (Uni Applicant)")}


@pytest.mark.parametrize("change", list(CHANGES))
def test_submit_review_refused_after_a_later_conflict(session: Session, change: str) -> None:
    p, reviewer = _assigned(session)
    make_change, sentence = CHANGES[change]
    make_change(session, p, reviewer)
    with pytest.raises(Conflict) as exc:
        submit_review(session, reviewer, p, technical_score=4, scientific_score=4, now=T0)
    assert exc.value.http_status == 409 and exc.value.field == "proposal"
    assert f"conflict of interest: you {sentence}" in exc.value.message
    assert exc.value.hint is not None and "ask an operator to reassign" in exc.value.hint
    review = session.scalars(select(Review).where(Review.proposal_id == p.id)).one()
    assert review.submitted_at is None and review.technical_score is None


@pytest.mark.parametrize("change", list(CHANGES))
def test_api_review_after_a_later_conflict_is_409(api_client: Any, session: Session,
                                                   change: str) -> None:
    p, reviewer = _assigned(session)
    CHANGES[change][0](session, p, reviewer)
    headers = bearer(make_token(session, reviewer))
    session.commit()
    r = api_client.post(f"/api/v1/proposals/{p.id}/reviews", headers=headers,
                        json={"technical_score": 4, "scientific_score": 4})
    assert r.status_code == 409, r.text
    body = r.json()
    assert "conflict of interest" in body["detail"]
    assert body["errors"][0]["field"] == "proposal"
    assert "reassign" in body["hint"]


def _portal_login(client: Any, username: str) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"username": username, "password": PASSWORD,
                                    "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text


def test_portal_review_form_shows_the_conflict_and_refuses(api_client: Any,
                                                            session: Session) -> None:
    p, reviewer = _assigned(session)
    session.commit()
    _portal_login(api_client, reviewer.username)
    assert 'data-testid="review-form"' in api_client.get(f"/reviews/{p.id}").text
    _join_project(session, p, reviewer)
    session.commit()
    page = api_client.get(f"/reviews/{p.id}").text
    assert 'data-testid="review-form"' not in page
    assert 'data-testid="review-conflict"' in page
    assert "You are a member of the applying project" in page and "reassign" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    r = api_client.post(f"/reviews/{p.id}", data={"technical_score": "4",
                                                  "scientific_score": "4",
                                                  "csrf_token": token},
                        follow_redirects=False)
    assert r.status_code == 409 and "conflict of interest" in r.text
