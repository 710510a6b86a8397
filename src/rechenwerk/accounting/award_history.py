"""Every award of a project with every period, ended, active and upcoming: what was
awarded, carried over, used and left unused. The balance (``balance.py``) answers "what
may run now" over the active periods only; this answers the PI's and funder's "what did
we get, and what did we do with it", and shows awards that start later.

Two queries per project, whatever its number of jobs: the periods, and the settled hours
grouped by period in the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rechenwerk.access.awards import carry_over_gpu_hours
from rechenwerk.access.models import Award, Project
from rechenwerk.accounting.models import UsageRecord

PeriodStatus = Literal["ended", "active", "upcoming"]


@dataclass(frozen=True, slots=True)
class PeriodLine:
    period_id: int
    starts_at: datetime
    ends_at: datetime
    status: PeriodStatus
    awarded_gpu_hours: float  # the period's own hours
    available_gpu_hours: float  # with what the previous period carried over
    used_gpu_hours: float  # settled
    unused_gpu_hours: float | None  # ended periods only: available - used (>= 0)


@dataclass(frozen=True, slots=True)
class AwardLine:
    award_id: int
    proposal_id: int | None
    gpu_type: str
    gpu_hours: float
    starts_at: datetime
    expires_at: datetime
    carry_over_limit_gpu_hours: float
    status: PeriodStatus
    periods: tuple[PeriodLine, ...]

    @property
    def used_gpu_hours(self) -> float:
        return sum(p.used_gpu_hours for p in self.periods)


@dataclass(frozen=True, slots=True)
class AwardHistory:
    project: str
    now: datetime
    awards: tuple[AwardLine, ...]

    @property
    def awarded_gpu_hours(self) -> float:
        return sum(a.gpu_hours for a in self.awards)

    @property
    def used_gpu_hours(self) -> float:
        return sum(a.used_gpu_hours for a in self.awards)

    @property
    def upcoming(self) -> tuple[AwardLine, ...]:
        return tuple(a for a in self.awards if a.status == "upcoming")

    @property
    def upcoming_gpu_hours(self) -> float:
        """Hours of periods not started yet (of upcoming and of running awards)."""
        return sum(p.awarded_gpu_hours for a in self.awards for p in a.periods
                   if p.status == "upcoming")


def _status(starts_at: datetime, ends_at: datetime, now: datetime) -> PeriodStatus:
    if ends_at <= now:
        return "ended"
    return "active" if starts_at <= now else "upcoming"


def award_history(session: Session, project: Project, now: datetime) -> AwardHistory:
    awards = list(session.scalars(select(Award).where(Award.project_id == project.id)
                                  .order_by(Award.starts_at, Award.id)))
    period_ids = [p.id for a in awards for p in a.periods]
    used: dict[int, float] = {}
    if period_ids:
        used = {pid: float(hours or 0.0) for pid, hours in session.execute(
            select(UsageRecord.award_period_id, func.sum(UsageRecord.gpu_hours))
            .where(UsageRecord.award_period_id.in_(period_ids))
            .group_by(UsageRecord.award_period_id)) if pid is not None}
    lines: list[AwardLine] = []
    for award in awards:
        # carry-over follows the ended periods' real use; later periods get the most a
        # period can carry (what the balance will show once they start)
        unused: list[float] = []
        available = carry_over_gpu_hours(award, unused)
        for k, period in enumerate(award.periods):
            if period.ends_at <= now:
                unused.append(available[k] - used.get(period.id, 0.0))
                available = carry_over_gpu_hours(award, unused)
        periods = []
        for k, period in enumerate(award.periods):
            status = _status(period.starts_at, period.ends_at, now)
            period_used = used.get(period.id, 0.0)
            periods.append(PeriodLine(
                period.id, period.starts_at, period.ends_at, status, period.gpu_hours,
                available[k], period_used,
                max(available[k] - period_used, 0.0) if status == "ended" else None))
        lines.append(AwardLine(
            award.id, award.proposal_id, award.gpu_type, award.gpu_hours, award.starts_at,
            award.expires_at, award.carry_over_limit_gpu_hours,
            _status(award.starts_at, award.expires_at, now), tuple(periods)))
    return AwardHistory(project.slug, now, tuple(lines))
