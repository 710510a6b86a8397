"""Calendar months on datetimes: award periods and report due dates count in months."""

from __future__ import annotations

import calendar
from datetime import datetime


def add_months(when: datetime, months: int) -> datetime:
    """``when`` plus ``months`` calendar months, the day clipped to the month's last."""
    y, m = divmod(when.month - 1 + months, 12)
    year, month = when.year + y, m + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)
