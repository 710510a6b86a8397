"""What every report shares: the table it returns (``ReportTable``, as JSON or CSV), whom
it covers (``Scope``: operators everything, others their projects, the one visibility
rule of ``access.visibility``) and the range it spans, with the bounds on the work one
report may ask for (docs/security.md, "Limits")."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import literal
from sqlalchemy.orm import Session

from rechenwerk.access.models import (
    User,
)
from rechenwerk.access.visibility import visible_project_ids
from rechenwerk.errors import InvalidInput

DEFAULT_RANGE_DAYS = 30
# Bounds on the work one report may ask for (docs/security.md, "Limits"): a range lies
# within these years and spans at most MAX_RANGE_DAYS; a report with time buckets
# (utilisation, usage by period) has at most MAX_BUCKETS of them (10 years of days).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
MAX_RANGE_DAYS = 36_600  # about 100 years
MAX_BUCKETS = 3_700


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str  # with the unit, e.g. "GPU-hours"
    numeric: bool = True
    digits: int = 1


@dataclass(frozen=True, slots=True)
class ReportTable:
    """One report: labelled columns (with units), rows, the range and the assumptions."""

    name: str
    title: str
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]]
    start: datetime
    end: datetime
    grouping: str = ""
    assumptions: tuple[str, ...] = ()
    totals: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": self.name,
            "title": self.title,
            "grouping": self.grouping,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "columns": [{"key": c.key, "label": c.label} for c in self.columns],
            "rows": [{k: _json_value(v) for k, v in r.items()} for r in self.rows],
            "totals": {k: _json_value(v) for k, v in self.totals.items()},
            "assumptions": list(self.assumptions),
        }

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([c.label for c in self.columns])
        for row in self.rows:
            writer.writerow([_csv_value(row.get(c.key), c) for c in self.columns])
        return buf.getvalue()


def _json_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, float):
        return round(v, 6) if math.isfinite(v) else None
    return v


def _csv_value(v: Any, col: Column) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.date().isoformat()
    if isinstance(v, float):
        return f"{v:.{max(col.digits, 3)}f}"
    return str(v)


# --------------------------------------------------------------------------- scope


@dataclass(frozen=True, slots=True)
class Scope:
    """Which projects a report may include: None = all (operators)."""

    project_ids: tuple[int, ...] | None

    def apply(self, stmt: Any, column: Any) -> Any:
        if self.project_ids is None:
            return stmt
        return stmt.where(column.in_(self.project_ids) if self.project_ids else literal(False))


def scope_for(session: Session, user: User) -> Scope:
    """The projects ``user`` may see (``access.visibility``). Unlike the other lists the
    ids are loaded here, on purpose: the portal keys its report cache on them."""
    visible = visible_project_ids(session, user)
    if visible is None:
        return Scope(None)
    return Scope(tuple(sorted(session.scalars(visible))))


def resolve_range(
    start: datetime | None, end: datetime | None, *, now: datetime
) -> tuple[datetime, datetime]:
    """Default: the last 30 days up to ``now``; both ends UTC; start before end; both
    within [EARLIEST, LATEST] and at most MAX_RANGE_DAYS apart."""
    end = _within_years((end or now), "to")
    start = _within_years(start, "from") if start is not None else max(
        end - timedelta(days=DEFAULT_RANGE_DAYS), EARLIEST)
    if start >= end:
        raise InvalidInput(
            f"the range is empty: from {start:%Y-%m-%d %H:%M} is not before to "
            f"{end:%Y-%m-%d %H:%M}",
            field="from",
            hint="Give --from earlier than --to (dates as YYYY-MM-DD, UTC).",
        )
    if end - start > timedelta(days=MAX_RANGE_DAYS):
        raise InvalidInput(
            f"the range from {start:%Y-%m-%d} to {end:%Y-%m-%d} spans "
            f"{(end - start).days} days; a report covers at most {MAX_RANGE_DAYS} days "
            "(about 100 years)",
            field="from",
            hint="Ask for a shorter range (a later --from or an earlier --to).",
        )
    return start, end


def _within_years(value: datetime, name: str) -> datetime:
    """``value`` in UTC, refused (422 naming ``name``) outside [EARLIEST, LATEST]."""
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        utc = EARLIEST if value.year < 5000 else LATEST + timedelta(days=1)
    if not EARLIEST <= utc <= LATEST:
        raise InvalidInput(
            f"{name} {value.isoformat()} is outside the dates reports cover "
            f"({EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d})",
            field=name,
            hint=f"Give a date between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} "
                 "(YYYY-MM-DD, UTC).",
        )
    return utc


def bucket_count(start: datetime, end: datetime, bucket: str) -> int:
    """How many ``bucket``s (day, week, month) the range [start, end) touches (the rows of
    a report), computed without walking them."""
    first = bucket_floor(start, bucket)
    if bucket == "month":
        months = (end.year - first.year) * 12 + end.month - first.month
        return months + (1 if end > bucket_floor(end, "month") else 0)
    step = timedelta(days=7 if bucket == "week" else 1)
    return -((first - end) // step)  # ceil((end - first) / step)


def check_buckets(start: datetime, end: datetime, bucket: str) -> None:
    """Refuse (422 naming ``period``) a report of more than MAX_BUCKETS buckets."""
    n = bucket_count(start, end, bucket)
    if n > MAX_BUCKETS:
        raise InvalidInput(
            f"the range from {start:%Y-%m-%d} to {end:%Y-%m-%d} has {n} {bucket}s; "
            f"a report has at most {MAX_BUCKETS} periods",
            field="period",
            hint="Ask for a larger period (week or month) or a shorter range.",
        )


def check_choice(value: str, choices: Sequence[str], field_name: str) -> str:
    if value not in choices:
        raise InvalidInput(
            f"{field_name} {value!r} is not valid",
            field=field_name,
            hint="Use one of: " + ", ".join(choices) + ".",
        )
    return value

def bucket_floor(t: datetime, bucket: str) -> datetime:
    """The start of the day, week (Monday) or month containing ``t``."""
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if bucket == "day":
        return day
    if bucket == "week":
        return day - timedelta(days=t.weekday())
    return day.replace(day=1)
