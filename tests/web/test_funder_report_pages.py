"""The portal's funder report page (operators): its tables, its CSV downloads, the link
from the reports page, and refusals for everyone else and for bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session
from test_pages import _hash, login

from factories import make_award, make_org, make_project, make_user
from rechenwerk.accounting.models import UsageRecord

JAN = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def centre(session: Session) -> None:
    sme = make_org(session, name="SME FR", kind="sme", country="FR")
    uni = make_org(session, name="Uni DE", kind="university", country="DE")
    make_user(session, username="op", org=uni, operator=True, password_hash=_hash())
    pia = make_user(session, username="pia", org=sme, password_hash=_hash())
    p = make_project(session, pi=pia, slug="llm")
    p.field_of_science = "1.2"
    award = make_award(session, p, gpu_hours=400.0, starts_at=JAN, periods=1,
                       period_months=3)  # Jan 1 - Apr 1: all inside 2026-Q1
    start = JAN + timedelta(days=9)
    session.add(UsageRecord(project_id=p.id, award_period_id=award.periods[0].id,
                            gpu_type="A100-80GB", gpus=2, started_at=start,
                            ended_at=start + timedelta(hours=20), gpu_hours=40.0,
                            energy_kwh=18.0, co2_kg=7.0, source="local", created_at=start))
    session.commit()


def test_operator_sees_every_section_with_csv(api_client: Any, centre: None) -> None:
    login(api_client, "op")
    assert 'href="/reports/funder"' in api_client.get("/reports").text
    r = api_client.get("/reports/funder?from=2026-01-01&to=2026-03-31")
    assert r.status_code == 200, r.text
    html = r.text
    for name in ("country", "field", "field-detail", "kind", "mode", "people", "decisions",
                 "waits", "fair-access", "fair-access-kind", "energy"):
        assert f'data-testid="funder-{name}"' in html
        assert f'href="/reports/funder/{name}.csv?from=2026-01-01' in html
    assert "SME + startup share: 100.0 % of awarded, 100.0 % of used GPU-hours" in html
    assert "Computer and information sciences" in html
    assert "18.0 kWh (0.0 measured, 18.0 estimated), 7.0 kg CO2e, estimated" in html
    csv = api_client.get("/reports/funder/kind.csv?from=2026-01-01T00:00:00%2B00:00"
                         "&to=2026-04-01T00:00:00%2B00:00")
    assert csv.headers["content-type"].startswith("text/csv")
    assert "rechenwerk-funder-kind-20260101-20260401.csv" in csv.headers[
        "content-disposition"]
    assert csv.text.splitlines() == [
        "Organisation kind,Awarded GPU-hours,Share of awarded,Used GPU-hours,Share of used",
        "sme,400.000,1.000,40.000,1.000"]
    every = api_client.get("/reports/funder/all.csv?from=2026-01-01&to=2026-04-01").text
    assert every.count("# ") == 13
    assert "2026-01,40.000,18.000,0.000,18.000,7.000,estimated,0.000" in every


def test_others_and_bad_input_are_refused(api_client: Any, centre: None) -> None:
    login(api_client, "op")
    assert api_client.get("/reports/funder?from=yesterday").status_code == 422
    assert api_client.get("/reports/funder/planets.csv").status_code == 422
    login(api_client, "pia")
    assert 'href="/reports/funder"' not in api_client.get("/reports").text
    assert api_client.get("/reports/funder").status_code == 403
    assert api_client.get("/reports/funder/kind.csv").status_code == 403


def test_default_range_is_the_year_so_far() -> None:
    from rechenwerk.web.pages.funder_report import funder_range

    now = datetime(2026, 5, 3, 12, tzinfo=UTC)
    assert funder_range("", "", now) == (datetime(2026, 1, 1, tzinfo=UTC), now)
    new_year = datetime(2026, 1, 1, tzinfo=UTC)
    assert funder_range("", "", new_year) == (datetime(2025, 1, 1, tzinfo=UTC), new_year)
    assert funder_range("2026-01-01", "2026-03-31", now) == (
        datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))


def test_charts(api_client: Any, centre: None) -> None:
    login(api_client, "op")
    html = api_client.get("/reports/funder?from=2026-01-01&to=2026-03-31").text
    for name in ("country", "field", "kind", "mode", "energy"):
        assert f'hx-get="/reports/funder/chart/{name}.svg?from=2026-01-01' in html
    svg = api_client.get("/reports/funder/chart/kind.svg?from=2026-01-01&to=2026-04-01")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg") and "awarded" in svg.text and "sme" in svg.text
    energy = api_client.get("/reports/funder/chart/energy.svg?from=2026-01-01&to=2026-04-01")
    assert "estimated" in energy.text and "2026-01" in energy.text
    assert api_client.get("/reports/funder/chart/people.svg").status_code == 404
    login(api_client, "pia")
    assert api_client.get("/reports/funder/chart/kind.svg").status_code == 403


def test_capacity_per_quarter_from_the_inventory(api_client: Any, centre: None) -> None:
    login(api_client, "op")
    gpus = sum(n.gpus for n in api_client.app.state.runtime.inventory())
    html = api_client.get("/reports/funder?from=2026-01-01&to=2026-03-31").text
    assert 'data-testid="funder-capacity"' in html
    assert f"({gpus} GPUs)" in html
    assert 'hx-get="/reports/funder/chart/capacity.svg?from=2026-01-01' in html
    csv = api_client.get("/reports/funder/capacity.csv?from=2026-01-01&to=2026-04-01")
    assert csv.text.splitlines()[1] == (
        f"2026-Q1,2026-01-01,2026-04-01,{gpus * 90 * 24:.3f},400.000,40.000,"
        f"{400 / (gpus * 90 * 24):.3f},{40 / (gpus * 90 * 24):.3f}")
    svg = api_client.get("/reports/funder/chart/capacity.svg?from=2026-01-01&to=2026-04-01")
    assert "capacity" in svg.text and "2026-Q1" in svg.text
