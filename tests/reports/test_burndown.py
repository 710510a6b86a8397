"""Burn-down of an award period: history of settled use, rate, forecast, run-out date."""

from __future__ import annotations

from datetime import timedelta

import pytest
from report_data import add_usage
from sqlalchemy.orm import Session

from factories import T0, make_award, make_project
from rechenwerk.accounting.balance import project_balance
from rechenwerk.reports.burndown import burn_down
from rechenwerk.web.charts import burndown_chart, chart_csv


def test_rate_forecast_and_run_out_date(session: Session) -> None:
    project = make_project(session, slug="bd")
    award = make_award(session, project, gpu_hours=1000.0, starts_at=T0, period_months=3)
    period_id = award.periods[0].id
    # 40 GPU-hours on each of the first 20 days (ending at 12:00 UTC).
    for day in range(20):
        add_usage(session, project, start=T0 + timedelta(days=day, hours=8), hours=40.0,
                  gpus=10, period_id=period_id)
    session.flush()
    now = T0 + timedelta(days=20)
    period = project_balance(session, project, now).periods[0]
    bd = burn_down(session, "bd", period, now=now, window_days=14)
    assert [h for _, h in bd.daily_used] == [40.0] * 20
    assert bd.rate_gpu_hours_per_day == pytest.approx(40.0)  # 14 days x 40 / 14
    assert bd.available == pytest.approx(200.0)
    assert bd.exhausted_at == now + timedelta(days=5)  # 200 left at 40 a day
    assert bd.forecast_unused_gpu_hours == 0.0
    xs, ys = bd.remaining_series()
    assert ys[0] == 1000.0 and ys[-1] == pytest.approx(200.0)
    assert xs[0] == T0 and xs[-1] == now
    fx, fy = bd.forecast_series()
    assert fx == [now, now + timedelta(days=5)] and fy == [pytest.approx(200.0), 0.0]
    rows = chart_csv(burndown_chart(bd)).splitlines()
    assert rows[0] == "series,date (UTC),GPU-hours remaining"
    assert any(r.startswith("forecast at 40.0 GPU-hours/day,") for r in rows)


def test_slow_use_leaves_hours_unused_and_new_period_has_no_rate(session: Session) -> None:
    project = make_project(session, slug="slow")
    award = make_award(session, project, gpu_hours=900.0, starts_at=T0, period_months=3)
    add_usage(session, project, start=T0 + timedelta(days=1), hours=14.0, gpus=1,
              period_id=award.periods[0].id)
    session.flush()
    now = T0 + timedelta(days=15)
    period = project_balance(session, project, now).periods[0]
    bd = burn_down(session, "slow", period, now=now)
    assert bd.rate_gpu_hours_per_day == pytest.approx(1.0)  # 14 GPU-h over 14 days
    days_left = (period.ends_at - now).total_seconds() / 86400
    assert bd.exhausted_at is None
    assert bd.forecast_unused_gpu_hours == pytest.approx(886.0 - days_left)
    fresh = burn_down(session, "slow", period, now=T0 + timedelta(hours=1))
    assert fresh.rate_gpu_hours_per_day == 0.0 and fresh.daily_used == ()
