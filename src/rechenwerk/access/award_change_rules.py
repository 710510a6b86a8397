"""What an approved award change does to the award's periods, the pure part: an
extension moves the last period's end, a supplement spreads extra GPU-hours over the
periods not ended yet, an early end drops the periods after the new end and cuts the one
that contains it. Periods keep their order and their start, so each maps onto the row it
came from (usage already charged to a period stays charged to it).

Pure and typed: no database, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rechenwerk.errors import InvalidInput

Period = tuple[datetime, datetime, float]  # starts_at, ends_at, GPU-hours


def extended(periods: Sequence[Period], until: datetime) -> list[Period]:
    """The periods with the last one ending at ``until`` (after the current end)."""
    if not periods:
        raise InvalidInput("the award has no periods", field="award")
    end = periods[-1][1]
    if until <= end:
        raise InvalidInput(f"an extension must end after the award's end "
                           f"({end:%Y-%m-%d}), got {until:%Y-%m-%d}", field="until")
    *head, (start, _end, hours) = periods
    return [*head, (start, until, hours)]


def supplemented(periods: Sequence[Period], extra_gpu_hours: float,
                 now: datetime) -> list[Period]:
    """The periods with ``extra_gpu_hours`` shared equally by those not ended at ``now``
    (the last of them takes the rounding remainder)."""
    if not extra_gpu_hours > 0 or extra_gpu_hours == float("inf"):
        raise InvalidInput(f"extra GPU-hours must be a positive number, got "
                           f"{extra_gpu_hours}", field="gpu_hours")
    open_ = [i for i, (_s, e, _h) in enumerate(periods) if e > now]
    if not open_:
        raise InvalidInput("every period of the award has ended: there is no period to "
                           "add GPU-hours to", field="gpu_hours",
                           hint="Extend the award first, or award the hours anew.")
    share = round(extra_gpu_hours / len(open_), 6)
    out = list(periods)
    for n, i in enumerate(open_):
        add = share if n < len(open_) - 1 else round(extra_gpu_hours - share * n, 6)
        s, e, h = out[i]
        out[i] = (s, e, round(h + add, 6))
    return out


def ended_early(periods: Sequence[Period], at: datetime) -> list[Period]:
    """The periods of an award that ends at ``at``: those starting at or after it are
    dropped (their GPU-hours released), the one containing it ends there."""
    if not periods:
        raise InvalidInput("the award has no periods", field="award")
    if at <= periods[0][0]:
        raise InvalidInput(f"an award that has not started ({periods[0][0]:%Y-%m-%d}) "
                           "cannot end early", field="until",
                           hint="End it after its start, or ask an operator to remove it.")
    if at >= periods[-1][1]:
        raise InvalidInput(f"an early end must be before the award's end "
                           f"({periods[-1][1]:%Y-%m-%d})", field="until")
    out: list[Period] = []
    for s, e, h in periods:
        if s >= at:
            break
        out.append((s, min(e, at), h))
    return out
