"""Awards: GPU-hours an operator grants a project (usually for an accepted proposal) on
one GPU type, split into consecutive periods; unused hours of a period carry over to the
next up to the award's carry-over limit."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.access.audit import record
from rechenwerk.access.award_changes import record_version
from rechenwerk.access.gpu_types import validate_gpu_type
from rechenwerk.access.models import Award, AwardPeriod, Project, Proposal, ProposalState, User
from rechenwerk.access.months import add_months
from rechenwerk.access.paging import Page, paginate
from rechenwerk.access.projects import get_project, require_approved
from rechenwerk.access.report_tasks import sync_report_tasks
from rechenwerk.access.security import require_operator
from rechenwerk.access.validation import check_positive
from rechenwerk.access.visibility import can_see_project, filter_id, only_visible
from rechenwerk.clock import ensure_utc
from rechenwerk.errors import (
    Conflict,
    FieldIssue,
    InvalidInput,
    InvalidTransition,
    NotFound,
    RechenwerkError,
    raise_collected,
    raise_issues,
)


def split_periods(starts_at: datetime, gpu_hours: float, count: int,
                  months: int = 3) -> list[tuple[datetime, datetime, float]]:
    """``count`` consecutive periods of ``months`` months sharing ``gpu_hours`` equally."""
    if count < 1:
        raise InvalidInput(f"period_count must be >= 1, got {count}", field="period_count")
    if months < 1:
        raise InvalidInput(f"period_months must be >= 1, got {months}", field="period_months")
    share = round(gpu_hours / count, 6)
    out = []
    for i in range(count):
        hours = share if i < count - 1 else round(gpu_hours - share * (count - 1), 6)
        out.append((add_months(starts_at, i * months), add_months(starts_at, (i + 1) * months),
                    hours))
    return out


def _check_periods(periods: Sequence[tuple[datetime, datetime, float]], gpu_hours: float,
                   starts_at: datetime, expires_at: datetime) -> None:
    issues: list[FieldIssue] = []
    for i, (s, e, h) in enumerate(periods):
        if e <= s:
            issues.append(FieldIssue(("periods", i, "ends_at"), "must be after starts_at"))
        if not h >= 0 or h == float("inf"):
            issues.append(FieldIssue(("periods", i, "gpu_hours"), f"must be >= 0, got {h}"))
        if s < starts_at:
            issues.append(FieldIssue(("periods", i, "starts_at"),
                                     "lies before the award's starts_at"))
        if e > expires_at:
            issues.append(FieldIssue(("periods", i, "ends_at"),
                                     "lies after the award's expires_at"))
    ordered = sorted(range(len(periods)), key=lambda i: periods[i][0])
    for a, b in itertools.pairwise(ordered):
        if periods[b][0] < periods[a][1]:
            issues.append(FieldIssue(
                ("periods", b, "starts_at"),
                f"overlaps period {a} ({periods[a][0].isoformat()} .. "
                f"{periods[a][1].isoformat()})"))
    total = sum(p[2] for p in periods)
    if not issues and abs(total - gpu_hours) > 1e-6 * max(1.0, gpu_hours):
        issues.append(FieldIssue(("periods",), f"period GPU-hours sum to {total:g}, "
                                               f"the award has {gpu_hours:g}"))
    raise_issues(issues, hint="Periods must not overlap, must lie within the award and "
                              "must add up to its GPU-hours.")
def new_award_problems(
    session: Session, *, project: Project, gpu_hours: float | None,
    gpu_type: str | None = None, proposal: Proposal | None = None,
    carry_over_limit_gpu_hours: float | None = 0.0,
) -> tuple[str | None, list[RechenwerkError]]:
    """Every rule an award's project, GPU-hours, GPU type, proposal and carry-over limit
    must meet, checked together (what :func:`create_award` refuses before its periods; a
    number None: not given in a usable form, not checked). Returns the GPU type's
    canonical name (None if unknown or missing) and the problems found."""
    found: list[RechenwerkError] = []

    def check(fn: Callable[[], object]) -> bool:
        try:
            fn()
        except RechenwerkError as exc:
            found.append(exc)
            return False
        return True

    check(partial(require_approved, project, "receive GPU-hours"))
    if gpu_hours is not None:
        check(partial(check_positive, gpu_hours, "gpu_hours"))
    if carry_over_limit_gpu_hours is not None:
        check(partial(check_positive, carry_over_limit_gpu_hours,
                      "carry_over_limit_gpu_hours", allow_zero=True))
    if proposal is not None:
        if proposal.project_id != project.id:
            found.append(InvalidInput(f"proposal {proposal.id} belongs to project "
                                      f"{proposal.project.slug!r}, not {project.slug!r}",
                                      field="proposal"))
        if proposal.state != ProposalState.ACCEPTED.value:
            found.append(InvalidTransition(
                f"proposal {proposal.id} is {proposal.state}, not accepted",
                field="proposal", hint="Decide the proposal first."))
        gpu_type = gpu_type or proposal.gpu_type
        granted = proposal.granted_gpu_hours
        if granted is not None and gpu_hours is not None and gpu_hours > granted * (1 + 1e-9):
            found.append(InvalidInput(
                f"gpu_hours: {gpu_hours:g} exceed the {granted:g} GPU-hours the decision on "
                f"proposal {proposal.id} granted", field="gpu_hours",
                hint="Award at most the grant; more GPU-hours later are a supplement "
                     "(`rechenwerk award request AWARD supplement`)."))
        earlier = session.scalar(select(Award).where(Award.proposal_id == proposal.id)
                                 .order_by(Award.id).limit(1))
        if earlier is not None:
            found.append(Conflict(
                f"proposal {proposal.id} already has award {earlier.id} "
                f"({earlier.gpu_hours:,.0f} GPU-hours)", field="proposal",
                hint=f"See `rechenwerk award show {earlier.id}`; an award without --proposal "
                     "gives a project more GPU-hours."))
    canonical = None
    if gpu_type is None:
        found.append(InvalidInput("gpu_type is required (no proposal to take it from)",
                                  field="gpu_type"))
    else:
        try:
            canonical = validate_gpu_type(gpu_type)
        except InvalidInput as exc:
            found.append(exc)
    return canonical, found


def create_award(
    session: Session, actor: User, *, project: Project, gpu_hours: float, starts_at: datetime,
    now: datetime, gpu_type: str | None = None, proposal: Proposal | None = None,
    periods: Sequence[tuple[datetime, datetime, float]] | None = None,
    period_count: int | None = None, period_months: int = 3,
    expires_at: datetime | None = None, carry_over_limit_gpu_hours: float = 0.0,
    final_report_months: int = 2, cluster: str | None = None,
) -> Award:
    """Award GPU-hours to a project (operators), split into explicit ``periods`` or into
    ``period_count`` periods of ``period_months`` months (default: one period)."""
    require_operator(actor)
    canonical, found = new_award_problems(
        session, project=project, gpu_hours=gpu_hours, gpu_type=gpu_type, proposal=proposal,
        carry_over_limit_gpu_hours=carry_over_limit_gpu_hours)
    refusals = [e for e in found if not isinstance(e, InvalidInput)]
    if refusals:  # not the fields' fault (the project, the proposal's state): first
        raise refusals[0]
    raise_collected([e for e in found if isinstance(e, InvalidInput)])
    assert canonical is not None  # no problems: the GPU type is known
    gpu_type = canonical
    starts_at = ensure_utc(starts_at)
    if periods is not None and period_count is not None:
        raise InvalidInput("give either periods or period_count, not both",
                           field="period_count")
    if periods is None:
        periods = split_periods(starts_at, gpu_hours, period_count or 1, period_months)
    else:
        periods = [(ensure_utc(s), ensure_utc(e), float(h)) for s, e, h in periods]
        if not periods:
            raise InvalidInput("periods must not be empty", field="periods")
    expires = ensure_utc(expires_at) if expires_at else max(p[1] for p in periods)
    if expires <= starts_at:
        raise InvalidInput("expires_at must be after starts_at", field="expires_at")
    _check_periods(periods, gpu_hours, starts_at, expires)
    award = Award(project_id=project.id, project=project,
                  proposal_id=proposal.id if proposal else None, gpu_type=gpu_type,
                  gpu_hours=float(gpu_hours), starts_at=starts_at, expires_at=expires,
                  carry_over_limit_gpu_hours=float(carry_over_limit_gpu_hours), created_at=now,
                  cluster=cluster)
    award.periods = [AwardPeriod(starts_at=s, ends_at=e, gpu_hours=h)
                     for s, e, h in sorted(periods)]
    session.add(award)
    session.flush()
    record_version(session, award, actor=actor, now=now)  # version 1: what was awarded
    sync_report_tasks(session, award, final_report_months=final_report_months, now=now)
    record(session, actor, "award.create", "award", award.id,
           {"project": project.slug, "gpu_type": gpu_type, "gpu_hours": award.gpu_hours,
            "proposal": proposal.id if proposal else None,
            "periods": [[p.starts_at, p.ends_at, p.gpu_hours] for p in award.periods],
            "expires_at": expires,
            "carry_over_limit_gpu_hours": award.carry_over_limit_gpu_hours,
            **({"cluster": cluster} if cluster else {})}, at=now)
    return award


def visible_award(session: Session, user: User, award_id: int) -> Award:
    award = session.get(Award, award_id)
    if award is None or not can_see_project(session, user, award.project_id):
        raise NotFound(f"award {award_id} not found", field="award")
    return award


def list_awards(
    session: Session, user: User, *, project: str | int | None = None,
    gpu_type: str | None = None, active_at: datetime | None = None,
    limit: int = 50, offset: int = 0,
) -> Page[Award]:
    stmt = only_visible(select(Award).order_by(Award.id), Award.project_id, session, user)
    if project is not None:
        stmt = stmt.where(Award.project_id == filter_id(session, user, get_project, project))
    if gpu_type is not None:
        stmt = stmt.where(Award.gpu_type == validate_gpu_type(gpu_type))
    if active_at is not None:
        active_at = ensure_utc(active_at)
        stmt = stmt.where(Award.starts_at <= active_at, Award.expires_at > active_at)
    return paginate(session, stmt, limit, offset)


def active_award_periods(session: Session, project: Project, at: datetime) -> list[AwardPeriod]:
    """Award periods of ``project`` that contain ``at`` (and whose award has not expired),
    ordered by period start."""
    at = ensure_utc(at)
    return list(session.scalars(
        select(AwardPeriod).join(Award, AwardPeriod.award_id == Award.id)
        .where(Award.project_id == project.id, AwardPeriod.starts_at <= at,
               AwardPeriod.ends_at > at, Award.expires_at > at)
        .order_by(AwardPeriod.starts_at, AwardPeriod.id)
    ))


def carry_over_gpu_hours(award: Award, unused_by_period: Sequence[float]) -> list[float]:
    """GPU-hours available in each period of ``award`` given the unused hours of the
    previous ones: period k gets its own hours plus min(unused of k-1, carry-over limit).
    ``unused_by_period[k]`` is what period k left unused (only k < len is used)."""
    out: list[float] = []
    carried = 0.0
    for k, period in enumerate(award.periods):
        available = period.gpu_hours + carried
        out.append(available)
        unused = unused_by_period[k] if k < len(unused_by_period) else available
        carried = min(max(unused, 0.0), award.carry_over_limit_gpu_hours)
    return out
