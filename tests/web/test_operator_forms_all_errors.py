"""Portal: the operator's call-creation and award forms report every mistake of one
submission at once, each beside its field with the input kept (issue 18 item 3): the
service's own checks run on what converted, not only after the form's are fixed."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_pages import _hash, error_of, login, post

from factories import T0, make_call, make_org, make_project, make_user
from rechenwerk.access.models import Award, Call, Proposal


def _error(page: str, name: str) -> str:
    return html.unescape(error_of(page, name))


def _invalid(page: str, name: str) -> bool:
    return re.search(rf'id="f-{name}" name="{name}"[^>]*aria-invalid="true"', page) is not None


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    org = make_org(session, name="Uni A")
    make_user(session, username="op", org=org, operator=True, password_hash=_hash())
    pi = make_user(session, username="pia", org=org)
    project = make_project(session, pi=pi, slug="alpha")
    call = make_call(session)
    p = Proposal(call_id=call.id, project_id=project.id, applicant_user_id=pi.id,
                 title="Granted", abstract="", justification="", gpu_type="A100-80GB",
                 requested_gpu_hours=100.0, granted_gpu_hours=40.0, state="accepted",
                 created_at=T0, decided_at=T0)
    session.add(p)
    session.commit()
    return {"proposal": p.id}


def test_call_form_reports_every_mistake_at_once(api_client: Any, world: dict[str, Any],
                                                  session: Session) -> None:
    login(api_client, "op")
    r = post(api_client, "/ops/calls", {
        "slug": "Bad Slug", "title": "", "access_mode": "research",
        "opens_at": "2026-02-01", "closes_at": "2026-01-01", "max_gpu_hours": "-5",
        "description": "Kept."}, page="/ops/calls")
    assert r.status_code == 422
    assert "slug 'Bad Slug' is not valid" in _error(r.text, "slug")
    assert "lower-case letters" in _error(r.text, "slug")  # the hint, in words
    assert "title must not be empty" in _error(r.text, "title")
    assert "closes_at must be after opens_at" in _error(r.text, "closes_at")
    assert "max_gpu_hours must be > 0" in _error(r.text, "max_gpu_hours")
    assert all(_invalid(r.text, n) for n in ("slug", "title", "closes_at", "max_gpu_hours"))
    assert 'value="Bad Slug"' in r.text and "Kept." in r.text
    # a date that did not convert does not hide the other fields' mistakes
    r = post(api_client, "/ops/calls", {
        "slug": "Bad Slug", "title": "", "access_mode": "research",
        "opens_at": "soon", "closes_at": "2026-01-01"}, page="/ops/calls")
    assert "must be a date" in _error(r.text, "opens_at")
    assert _error(r.text, "slug") and _error(r.text, "title")
    assert session.scalar(select(func.count()).select_from(Call)) == 1  # the fixture's


def test_award_form_reports_every_mistake_at_once(api_client: Any, world: dict[str, Any],
                                                   session: Session) -> None:
    login(api_client, "op")
    r = post(api_client, "/ops/awards", {
        "project": "alpha", "proposal": str(world["proposal"]), "gpu_hours": "50",
        "starts_at": "", "period_count": "2", "period_months": "3",
        "gpu_type": "Z9000"}, page="/ops/calls")
    assert r.status_code == 422
    assert "Start is required" in _error(r.text, "starts_at")
    assert "exceed the 40 GPU-hours the decision" in _error(r.text, "gpu_hours")
    assert "unknown GPU type 'Z9000'" in _error(r.text, "gpu_type")
    assert all(_invalid(r.text, n) for n in ("starts_at", "gpu_hours", "gpu_type"))
    assert 'value="50"' in r.text
    r = post(api_client, "/ops/awards", {
        "project": "nope", "gpu_hours": "abc", "starts_at": "2026-01-01",
        "period_count": "0", "period_months": "3"}, page="/ops/calls")
    assert r.status_code == 422
    assert "not found" in _error(r.text, "project")
    assert "must be a number" in _error(r.text, "gpu_hours")
    assert "at least 1" in _error(r.text, "period_count")
    assert session.scalar(select(func.count()).select_from(Award)) == 0
