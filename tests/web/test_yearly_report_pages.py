"""The portal's yearly report (operators): the printable page with every figure labelled
measured or estimated and its source, the PDF, the links to it, and refusals for everyone
else and for a bad year."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session
from test_pages import _hash, login

from factories import make_award, make_org, make_project, make_user
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.reports.funder import SECTIONS

JAN = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def centre(session: Session) -> None:
    sme = make_org(session, name="SME FR", kind="sme", country="FR")
    uni = make_org(session, name="Uni DE", kind="university", country="DE")
    make_user(session, username="op", org=uni, operator=True, password_hash=_hash())
    pia = make_user(session, username="pia", org=sme, password_hash=_hash())
    p = make_project(session, pi=pia, slug="llm")
    award = make_award(session, p, gpu_hours=400.0, starts_at=JAN, periods=1,
                       period_months=3)
    start = JAN + timedelta(days=9)
    session.add(UsageRecord(project_id=p.id, award_period_id=award.periods[0].id,
                            gpu_type="A100-80GB", gpus=2, started_at=start,
                            ended_at=start + timedelta(hours=20), gpu_hours=40.0,
                            energy_kwh=18.0, co2_kg=7.0, source="local", created_at=start))
    session.commit()


def test_operator_sees_the_printable_page(api_client: Any, centre: None) -> None:
    login(api_client, "op")
    assert 'href="/reports/yearly"' in api_client.get("/reports").text
    assert 'href="/reports/yearly?year=2026"' in api_client.get(
        "/reports/funder?from=2026-01-01&to=2026-03-31").text
    r = api_client.get("/reports/yearly?year=2026")
    assert r.status_code == 200, r.text
    html = r.text
    assert "<h1>Yearly report 2026</h1>" in html
    for name in SECTIONS:
        assert f'data-testid="yearly-{name}"' in html
        assert re.search(f'data-testid="basis-{name}">(measured|estimated)<', html)
        assert f'data-testid="source-{name}">Source: ' in html
    assert 'data-testid="basis-energy">estimated<' in html
    assert "400.0 awarded, 40.0 used GPU-hours" in html
    assert "18.0 kWh (0.0 measured, 18.0 estimated), 7.0 kg CO2e, estimated" in html
    assert 'href="/reports/yearly.pdf?year=2026"' in html
    assert html.count("<svg") >= 5  # the charts are inline: the page prints as it is
    assert "@media print" in api_client.get("/static/portal.css").text


def test_pdf(api_client: Any, centre: None) -> None:
    login(api_client, "op")
    r = api_client.get("/reports/yearly.pdf?year=2026")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf"
    assert 'filename="rechenwerk-yearly-report-2026.pdf"' in r.headers["content-disposition"]
    assert r.content.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", r.content)) > 1


def test_refused_for_others_and_bad_years(api_client: Any, centre: None) -> None:
    login(api_client, "pia")
    assert 'href="/reports/yearly"' not in api_client.get("/reports").text
    assert api_client.get("/reports/yearly?year=2026").status_code == 403
    assert api_client.get("/reports/yearly.pdf?year=2026").status_code == 403
    login(api_client, "op")
    for bad in ("twenty", "1800", "10000"):
        r = api_client.get(f"/reports/yearly?year={bad}")
        assert r.status_code == 422, bad
        assert "year must be a calendar year" in r.text
    assert api_client.get("/reports/yearly.pdf?year=x").status_code == 422
