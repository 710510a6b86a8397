"""The live GPU-hour balance of a project, per award period.

    available = awarded (incl. carry-over) - settled usage - committed

where *committed* is what the project's pending, starting, running (and preempted,
about to be requeued) jobs may still use: GPUs x walltime each. A job's real usage is
settled when a run ends (:mod:`rechenwerk.accounting.charging`), and from then on its
commitment no longer counts.

Accounting does not know the jobs table: the jobs domain registers the SQL of its
commitments (:func:`register_commitments`, done when :mod:`rechenwerk.jobs.models`
loads), and the balance query embeds it as a correlated subquery, so the balance stays
one round trip on the submit path.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from rechenwerk.access.awards import carry_over_gpu_hours
from rechenwerk.access.models import Award, AwardPeriod, Project
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.store.base import UTCDateTime

# Job states that hold a commitment against the balance (strings: accounting does not
# import rechenwerk.jobs; the jobs domain's commitments query uses them).
COMMITTING_STATES: tuple[str, ...] = ("pending", "starting", "running", "preempted")


class CommittedGpuSeconds(Protocol):
    """SQL of what may still be used against one award period: given the award period id
    column of the balance query, a one-value SELECT of GPU-seconds (the balance query
    correlates it)."""

    def __call__(self, award_period_id: Any) -> Any: ...


_commitments: list[CommittedGpuSeconds] = []


def register_commitments(source: CommittedGpuSeconds) -> None:
    """Set the SQL of committed GPU-seconds per award period (the jobs domain does)."""
    _commitments[:] = [source]
    balance_stmt.cache_clear()
    all_balances_stmt.cache_clear()


def _committed_source() -> CommittedGpuSeconds:
    if not _commitments:
        # The table registry loads every domain's models; the domain that commits
        # GPU-hours (jobs) registers its query when its models load.
        importlib.import_module("rechenwerk.store.tables")
    if not _commitments:
        raise RuntimeError(
            "no source of committed GPU-hours is registered "
            "(rechenwerk.accounting.balance.register_commitments)"
        )
    return _commitments[0]


class ProjectRef(Protocol):
    """What a balance needs of a project: a :class:`Project`, or the id and slug read
    by a lighter query (the submit path)."""

    @property
    def id(self) -> int: ...

    @property
    def slug(self) -> str: ...


@dataclass(frozen=True, slots=True)
class PeriodBalance:
    award_period_id: int
    award_id: int
    gpu_type: str
    starts_at: datetime
    ends_at: datetime
    awarded_gpu_hours: float  # the period's hours plus what carried over into it
    settled_gpu_hours: float
    committed_gpu_hours: float

    @property
    def available_gpu_hours(self) -> float:
        return self.awarded_gpu_hours - self.settled_gpu_hours - self.committed_gpu_hours

    def to_dict(self) -> dict[str, Any]:
        return {
            "award_period_id": self.award_period_id,
            "award_id": self.award_id,
            "gpu_type": self.gpu_type,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "awarded_gpu_hours": round(self.awarded_gpu_hours, 6),
            "settled_gpu_hours": round(self.settled_gpu_hours, 6),
            "committed_gpu_hours": round(self.committed_gpu_hours, 6),
            "available_gpu_hours": round(self.available_gpu_hours, 6),
        }


@dataclass(frozen=True, slots=True)
class Balance:
    project_id: int
    project: str
    at: datetime
    periods: tuple[PeriodBalance, ...]
    # True when the project has awards but none is active at ``at`` (all expired).
    expired_award: bool = False

    @property
    def awarded_gpu_hours(self) -> float:
        return sum(p.awarded_gpu_hours for p in self.periods)

    @property
    def settled_gpu_hours(self) -> float:
        return sum(p.settled_gpu_hours for p in self.periods)

    @property
    def committed_gpu_hours(self) -> float:
        return sum(p.committed_gpu_hours for p in self.periods)

    @property
    def available_gpu_hours(self) -> float:
        return sum(p.available_gpu_hours for p in self.periods)

    def best_period(self, gpu_type: str | None = None) -> PeriodBalance | None:
        """The period a new job is charged to: among those matching ``gpu_type``, the one
        ending first that still has hours, else the one with the most available."""
        cands = [p for p in self.periods
                 if gpu_type is None or p.gpu_type.lower() == gpu_type.lower()]
        if not cands:
            return None
        with_hours = [p for p in cands if p.available_gpu_hours > 0]
        if with_hours:
            return min(with_hours, key=lambda p: (p.ends_at, p.award_period_id))
        return max(cands, key=lambda p: p.available_gpu_hours)

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "at": self.at.isoformat(),
            "awarded_gpu_hours": round(self.awarded_gpu_hours, 6),
            "settled_gpu_hours": round(self.settled_gpu_hours, 6),
            "committed_gpu_hours": round(self.committed_gpu_hours, 6),
            "available_gpu_hours": round(self.available_gpu_hours, 6),
            "expired_award": self.expired_award,
            "periods": [p.to_dict() for p in self.periods],
        }


def _settled_by_period(session: Session, period_ids: Iterable[int]) -> dict[int, float]:
    ids = list(period_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(UsageRecord.award_period_id, func.sum(UsageRecord.gpu_hours))
        .where(UsageRecord.award_period_id.in_(ids))
        .group_by(UsageRecord.award_period_id)
    )
    return {int(pid): float(total or 0.0) for pid, total in rows if pid is not None}


def _period_columns() -> list[Any]:
    """The columns :func:`balance_from_rows` reads: an award period with its settled and
    committed hours (two correlated subqueries)."""
    committed_sq = (
        _committed_source()(AwardPeriod.id).correlate(AwardPeriod).scalar_subquery()
    )
    settled_sq = (
        select(func.coalesce(func.sum(UsageRecord.gpu_hours), 0.0))
        .where(UsageRecord.award_period_id == AwardPeriod.id)
        .correlate(AwardPeriod).scalar_subquery()
    )
    return [AwardPeriod.id, AwardPeriod.award_id, AwardPeriod.starts_at,
            AwardPeriod.ends_at, AwardPeriod.gpu_hours, Award.gpu_type,
            Award.carry_over_limit_gpu_hours, settled_sq.label("settled"),
            committed_sq.label("committed_gpu_s")]


@lru_cache(maxsize=1)
def balance_stmt() -> Any:
    """The active periods of project ``:project_id`` at ``:at`` with their settled and
    committed hours, built once: building this statement (two correlated subqueries) and
    its compile-cache key on every call cost more CPU than executing it."""
    at = bindparam("at", type_=UTCDateTime())
    return (
        select(*_period_columns())
        .join(Award, AwardPeriod.award_id == Award.id)
        .where(Award.project_id == bindparam("project_id"), AwardPeriod.starts_at <= at,
               AwardPeriod.ends_at > at, Award.expires_at > at)
        .order_by(AwardPeriod.starts_at, AwardPeriod.id)
    )


@lru_cache(maxsize=1)
def all_balances_stmt() -> Any:
    """:func:`balance_stmt` for every project at once, with the project's id and slug."""
    at = bindparam("at", type_=UTCDateTime())
    return (
        select(*_period_columns(), Award.project_id, Project.slug.label("project_slug"))
        .join(Award, AwardPeriod.award_id == Award.id)
        .join(Project, Award.project_id == Project.id)
        .where(AwardPeriod.starts_at <= at, AwardPeriod.ends_at > at, Award.expires_at > at)
        .order_by(Award.project_id, AwardPeriod.starts_at, AwardPeriod.id)
    )


@dataclass(frozen=True, slots=True)
class _Ref:
    id: int
    slug: str


def balances_at(session: Session, at: datetime) -> list[Balance]:
    """The balance of every project with an active award period at ``at`` (one query,
    plus the earlier periods of awards with a carry-over limit), by project id."""
    session.flush()
    rows = session.connection().execute(all_balances_stmt(), {"at": at}).all()
    by_project: dict[int, list[Any]] = {}
    slugs: dict[int, str] = {}
    for row in rows:
        by_project.setdefault(row.project_id, []).append(row)
        slugs[row.project_id] = row.project_slug
    return [balance_from_rows(session, _Ref(pid, slugs[pid]), at, project_rows)
            for pid, project_rows in by_project.items()]


_AWARD_COUNT_STMT = select(func.count(Award.id)).where(
    Award.project_id == bindparam("project_id"))


def project_balance(session: Session, project: ProjectRef, at: datetime) -> Balance:
    """The balance of ``project`` at ``at`` over its active award periods.

    One query in the common case (active periods with settled and committed hours);
    awards with a carry-over limit also read their earlier periods."""
    # One round trip: the active periods with their settled and committed hours. Core
    # execution on the session's connection: the ORM execute path costs more CPU than
    # this plain column query needs (it is on every job submission).
    session.flush()  # what the ORM path would autoflush (a no-op when nothing is pending)
    rows = session.connection().execute(
        balance_stmt(), {"project_id": project.id, "at": at}).all()
    return balance_from_rows(session, project, at, rows)


def balance_from_rows(session: Session, project: ProjectRef, at: datetime,
                      rows: Sequence[Any]) -> Balance:
    """The balance from the rows of :func:`balance_stmt` (or a statement that adds
    columns to it, as the submit path does to save a round trip)."""
    if not rows:
        expired = session.scalar(_AWARD_COUNT_STMT, {"project_id": project.id}) != 0
        return Balance(project.id, project.slug, at, (), expired)
    settled = {r.id: float(r.settled or 0.0) for r in rows}
    committed = {r.id: float(r.committed_gpu_s or 0) / 3600.0 for r in rows}
    awarded = {r.id: float(r.gpu_hours) for r in rows}
    carrying = {r.award_id for r in rows if r.carry_over_limit_gpu_hours > 0}
    for award_id in carrying:
        award = session.get(Award, award_id)
        assert award is not None
        past = [p.id for p in award.periods if p.ends_at <= at]
        past_settled = _settled_by_period(session, past)
        unused: list[float] = []
        available = carry_over_gpu_hours(award, [])
        for k, period in enumerate(award.periods):
            if period.ends_at <= at:
                unused.append(available[k] - past_settled.get(period.id, 0.0))
                available = carry_over_gpu_hours(award, unused)
        for k, period in enumerate(award.periods):
            if period.id in awarded:
                awarded[period.id] = available[k]
    periods = tuple(
        PeriodBalance(
            award_period_id=r.id,
            award_id=r.award_id,
            gpu_type=r.gpu_type,
            starts_at=r.starts_at,
            ends_at=r.ends_at,
            awarded_gpu_hours=awarded[r.id],
            settled_gpu_hours=settled.get(r.id, 0.0),
            committed_gpu_hours=committed.get(r.id, 0.0),
        )
        for r in rows
    )
    return Balance(project.id, project.slug, at, periods, False)


def period_for(session: Session, project_id: int, at: datetime) -> AwardPeriod | None:
    """The award period of ``project_id`` that contains ``at`` (earliest ending first)."""
    return session.scalars(
        select(AwardPeriod)
        .join(Award, AwardPeriod.award_id == Award.id)
        .where(Award.project_id == project_id, AwardPeriod.starts_at <= at,
               AwardPeriod.ends_at > at)
        .order_by(AwardPeriod.ends_at, AwardPeriod.id)
    ).first()
