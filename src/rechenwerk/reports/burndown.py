"""Burn-down of one award period: GPU-hours remaining over time, what pending and running
jobs have committed, and a forecast at the current rate of use.

The balance itself (awarded incl. carry-over, settled, committed) is the accounting
service's :func:`rechenwerk.accounting.balance.project_balance`; this module only adds
the history of settled usage and the forecast:

- rate = settled GPU-hours in the last ``window_days`` (or since the period began, if
  shorter) / the length of that window in days;
- forecast = available now (after commitments) minus rate x days, until the period ends
  or the hours run out (``exhausted_at``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rechenwerk.accounting.balance import PeriodBalance
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.reports.sql import bucket_start, bucket_value, dialect_of

DEFAULT_WINDOW_DAYS = 14.0


@dataclass(frozen=True, slots=True)
class BurnDown:
    project: str
    period: PeriodBalance
    now: datetime
    daily_used: tuple[tuple[datetime, float], ...]  # (day, GPU-hours settled that day)
    rate_gpu_hours_per_day: float
    window_days: float
    exhausted_at: datetime | None  # when the available hours run out at the current rate
    forecast_unused_gpu_hours: float  # left at the period's end at the current rate

    @property
    def awarded(self) -> float:
        return self.period.awarded_gpu_hours

    @property
    def available(self) -> float:
        return self.period.available_gpu_hours

    def remaining_series(self) -> tuple[list[datetime], list[float]]:
        """Awarded minus cumulative settled usage, from the period start to now."""
        xs = [self.period.starts_at]
        ys = [self.awarded]
        used = 0.0
        for day, hours in self.daily_used:
            used += hours
            xs.append(min(day + timedelta(days=1), self.now))
            ys.append(self.awarded - used)
        end = min(self.now, self.period.ends_at)
        if xs[-1] < end:
            xs.append(end)
            ys.append(self.awarded - used)
        return xs, ys

    def forecast_series(self) -> tuple[list[datetime], list[float]]:
        if self.now >= self.period.ends_at:
            return [], []
        end = self.exhausted_at or self.period.ends_at
        days = (end - self.now).total_seconds() / 86400.0
        return [self.now, end], [self.available,
                                 max(self.available - self.rate_gpu_hours_per_day * days, 0.0)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "period": self.period.to_dict(),
            "rate_gpu_hours_per_day": self.rate_gpu_hours_per_day,
            "window_days": self.window_days,
            "exhausted_at": self.exhausted_at.isoformat() if self.exhausted_at else None,
            "forecast_unused_gpu_hours": self.forecast_unused_gpu_hours,
            "daily_used": [[d.isoformat(), h] for d, h in self.daily_used],
        }


def burn_down(
    session: Session, project: str, period: PeriodBalance, *, now: datetime,
    window_days: float = DEFAULT_WINDOW_DAYS,
) -> BurnDown:
    """History and forecast for one period of a balance the caller already computed (and
    authorised)."""
    day = bucket_start(UsageRecord.ended_at, "day", dialect_of(session))
    rows = session.execute(
        select(day, func.sum(UsageRecord.gpu_hours))
        .where(UsageRecord.award_period_id == period.award_period_id,
               UsageRecord.ended_at <= now)
        .group_by(day).order_by(day)
    ).all()
    daily = tuple((bucket_value(d), float(h or 0.0)) for d, h in rows)
    window_start = max(period.starts_at, now - timedelta(days=window_days))
    window = max((min(now, period.ends_at) - window_start).total_seconds() / 86400.0, 1.0)
    recent = session.scalar(
        select(func.coalesce(func.sum(UsageRecord.gpu_hours), 0.0))
        .where(UsageRecord.award_period_id == period.award_period_id,
               UsageRecord.ended_at > window_start, UsageRecord.ended_at <= now)
    )
    rate = float(recent or 0.0) / window
    available = period.available_gpu_hours
    exhausted_at = None
    days_left = max((period.ends_at - now).total_seconds() / 86400.0, 0.0)
    if rate > 0 and available > 0 and available / rate < days_left:
        exhausted_at = now + timedelta(days=available / rate)
    elif available <= 0 and now < period.ends_at:
        exhausted_at = now
    unused = max(available - rate * days_left, 0.0)
    return BurnDown(project, period, now, daily, rate, window, exhausted_at, unused)
