"""Bounded work per report (docs/security.md, "Limits"): a range lies within the years
reports cover and spans at most MAX_RANGE_DAYS; bucketed reports have at most MAX_BUCKETS
periods; every refusal is a 422 naming the field and the limit. On SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from report_data import Centre
from sqlalchemy.orm import Session

from factories import bearer, make_token
from rechenwerk.reports import tables as report_tables
from rechenwerk.reports import utilisation as report_utilisation


def _get(api_client: Any, token: str, path: str, **params: str) -> Any:
    return api_client.get(f"/api/v1/reports/{path}", params=params, headers=bearer(token))


def test_utilisation_per_day_over_a_century_is_refused_naming_the_limit(
        session: Session, centre: Centre, api_client: Any) -> None:
    member = make_token(session, centre.pi_beta)
    session.commit()
    r = _get(api_client, member, "utilisation", **{"from": "1926-12-01", "to": "2026-12-01",
                                                   "period": "day"})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["errors"][0]["field"] == "period"
    assert str(report_tables.MAX_BUCKETS) in body["detail"] and "week or month" in body["hint"]
    # the same century per month is fine (1,201 rows)
    r = _get(api_client, member, "utilisation", **{"from": "1926-12-01", "to": "2026-12-01",
                                                   "period": "month"})
    assert r.status_code == 200, r.text
    assert len(r.json()["rows"]) == 1200


def test_usage_by_period_obeys_the_bucket_limit(session: Session, centre: Centre,
                                                api_client: Any) -> None:
    op = make_token(session, centre.operator)
    session.commit()
    r = _get(api_client, op, "usage", by="period", period="day",
             **{"from": "2000-01-01", "to": "2020-01-01"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "period"


@pytest.mark.parametrize("params, field", [
    ({"from": "0001-01-01", "to": "9999-12-31"}, "to"),
    ({"from": "0001-01-01T00:00:00Z"}, "from"),
    ({"from": "2026-01-01", "to": "9999-12-31T23:00:00-05:00"}, "to"),
    ({"to": "0001-01-02"}, "to"),
    ({"from": "1900-01-01", "to": "2026-01-01"}, "from"),  # 126 years
])
@pytest.mark.parametrize("report", ["usage", "utilisation", "waits", "energy", "gpu-use"])
def test_ranges_outside_the_bounds_are_422(session: Session, centre: Centre,
                                           api_client: Any, report: str,
                                           params: dict[str, str], field: str) -> None:
    op = make_token(session, centre.operator)
    session.commit()
    r = _get(api_client, op, report, period="month", **params)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field
    assert r.json()["hint"]


def test_ten_years_of_days_are_answered(session: Session, centre: Centre,
                                        api_client: Any) -> None:
    op = make_token(session, centre.operator)
    session.commit()
    r = _get(api_client, op, "utilisation", period="day",
             **{"from": "2016-01-01", "to": "2026-01-01"})
    assert r.status_code == 200, r.text
    assert len(r.json()["rows"]) == 3653


def test_bucket_count_matches_the_buckets_walked() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        start = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(10**9))
        end = start + timedelta(seconds=rng.choice([1, 3600, 86400, 7 * 86400,
                                                    rng.randrange(1, 10**8)]))
        if rng.random() < 0.3:
            end = max(end.replace(hour=0, minute=0, second=0), start + timedelta(days=1))
        for bucket in ("day", "week", "month"):
            walked = len(report_utilisation._bucket_edges(start, end, bucket)) - 1
            assert report_tables.bucket_count(start, end, bucket) == walked, (start, end, bucket)
