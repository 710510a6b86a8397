"""Award changes: a project's PI asks for an extension (later end), a supplement (more
GPU-hours) or an early end of an award; an operator approves (possibly granting less or
another date) or rejects it, always with a note. An approved change rewrites the award's
periods in place (``award_change_rules``) and makes a new :class:`AwardVersion`, so the
award's history is kept; the live balance follows at once (it reads the periods).

Every check runs before anything changes: a decision that fails leaves the award, its
periods and the balance as they were.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.access import award_change_rules as rules
from rechenwerk.access.audit import record
from rechenwerk.access.models import (
    Award,
    AwardChange,
    AwardChangeKind,
    AwardChangeState,
    AwardVersion,
    ProjectRole,
    User,
)
from rechenwerk.access.paging import Page, paginate
from rechenwerk.access.projects import require_project_role
from rechenwerk.access.report_tasks import sync_report_tasks
from rechenwerk.access.security import require_operator
from rechenwerk.access.validation import check_choice
from rechenwerk.access.visibility import can_see_project, only_visible
from rechenwerk.clock import ensure_utc
from rechenwerk.errors import Conflict, FieldIssue, InvalidTransition, NotFound, raise_issues

KINDS = frozenset(k.value for k in AwardChangeKind)
STATES = frozenset(s.value for s in AwardChangeState)
MAX_TEXT = 5000


def _periods(award: Award) -> list[rules.Period]:
    return [(p.starts_at, p.ends_at, p.gpu_hours) for p in award.periods]


def record_version(session: Session, award: Award, *, actor: User | None, now: datetime,
                   change: AwardChange | None = None) -> AwardVersion:
    """Keep the award as it is now as its current ``version``."""
    row = AwardVersion(
        award_id=award.id, version=award.version, change_id=change.id if change else None,
        gpu_hours=award.gpu_hours, expires_at=award.expires_at,
        periods=[[s.isoformat(), e.isoformat(), h] for s, e, h in _periods(award)],
        created_at=now, created_by_user_id=actor.id if actor else None)
    session.add(row)
    session.flush()
    return row


def _require_running(award: Award, now: datetime) -> None:
    if award.expires_at <= now:
        raise Conflict(f"award {award.id} ended on {award.expires_at:%Y-%m-%d}; an ended "
                       "award is not changed", field="award",
                       hint="Apply for new GPU-hours with a proposal.")


def _text(value: str, name: str, issues: list[FieldIssue], *, required: bool) -> str:
    value = value.strip()
    if required and not value:
        issues.append(FieldIssue((name,), "must not be empty: say why"))
    if len(value) > MAX_TEXT:
        issues.append(FieldIssue((name,), f"must be at most {MAX_TEXT} characters, got "
                                 f"{len(value)}"))
    return value


def request_change(session: Session, actor: User, award: Award, *, kind: str, reason: str,
                   now: datetime, until: datetime | None = None,
                   extra_gpu_hours: float | None = None) -> AwardChange:
    """A PI's (or an operator's) request; what it asks is checked against the award now
    (so an impossible request is refused at once, not at the decision)."""
    require_project_role(session, actor, award.project, {ProjectRole.PI.value})
    check_choice(kind, KINDS, "kind")
    _require_running(award, now)
    issues: list[FieldIssue] = []
    reason = _text(reason, "reason", issues, required=True)
    until = ensure_utc(until) if until is not None else None
    if kind == AwardChangeKind.SUPPLEMENT:
        if until is not None:
            issues.append(FieldIssue(("until",), "a supplement keeps the award's end; give "
                                     "only gpu_hours"))
        if extra_gpu_hours is None:
            issues.append(FieldIssue(("gpu_hours",), "is required: the extra GPU-hours"))
    else:
        if extra_gpu_hours is not None:
            issues.append(FieldIssue(("gpu_hours",), f"an {kind.replace('_', ' ')} keeps the "
                                     "GPU-hours; give only until"))
        if kind == AwardChangeKind.EXTENSION and until is None:
            issues.append(FieldIssue(("until",), "is required: the new end"))
        if kind == AwardChangeKind.EARLY_END:
            until = until or now
            if until < now:
                issues.append(FieldIssue(("until",), "an early end cannot lie in the past"))
    raise_issues(issues)
    _apply(award, kind, until, extra_gpu_hours, now)  # refuses what cannot be done
    open_same = session.scalar(select(AwardChange.id).where(
        AwardChange.award_id == award.id, AwardChange.kind == kind,
        AwardChange.state == AwardChangeState.REQUESTED.value))
    if open_same is not None:
        raise Conflict(f"award {award.id} already has an open {kind.replace('_', ' ')} "
                       f"request ({open_same})", field="kind",
                       hint=f"Withdraw it first: `rechenwerk award change-withdraw "
                            f"{open_same}`.")
    change = AwardChange(
        award_id=award.id, award=award, kind=kind, state=AwardChangeState.REQUESTED.value,
        reason=reason, requested_until=until, extra_gpu_hours=extra_gpu_hours,
        requested_by_user_id=actor.id, requested_by=actor, requested_at=now,
        decision_note="")
    session.add(change)
    session.flush()
    record(session, actor, "award_change.request", "award", award.id,
           {"change": change.id, "kind": kind, "until": until,
            "gpu_hours": extra_gpu_hours, "reason": reason}, at=now)
    return change


def _apply(award: Award, kind: str, until: datetime | None, extra: float | None,
           now: datetime) -> list[rules.Period]:
    periods = _periods(award)
    if kind == AwardChangeKind.EXTENSION:
        assert until is not None
        return rules.extended(periods, until)
    if kind == AwardChangeKind.SUPPLEMENT:
        assert extra is not None
        return rules.supplemented(periods, extra, now)
    assert until is not None
    return rules.ended_early(periods, until)


def decide_change(session: Session, actor: User, change: AwardChange, *, decision: str,
                  note: str, now: datetime, until: datetime | None = None,
                  gpu_hours: float | None = None,
                  final_report_months: int = 2) -> AwardChange:
    """Approve or reject a request (operators), with a note. On approval ``until`` /
    ``gpu_hours`` grant another end or fewer GPU-hours than asked (default: as asked)."""
    require_operator(actor)
    check_choice(decision, {"approved", "rejected"}, "decision")
    if change.state != AwardChangeState.REQUESTED.value:
        raise InvalidTransition(f"award change {change.id} is already {change.state}",
                                field="state")
    issues: list[FieldIssue] = []
    note = _text(note, "note", issues, required=True)
    if decision == "rejected" and (until is not None or gpu_hours is not None):
        issues.append(FieldIssue(("decision",), "a rejection grants nothing: leave out "
                                 "until and gpu_hours"))
    if change.kind == AwardChangeKind.SUPPLEMENT and until is not None:
        issues.append(FieldIssue(("until",), "a supplement keeps the award's end"))
    if change.kind != AwardChangeKind.SUPPLEMENT and gpu_hours is not None:
        issues.append(FieldIssue(("gpu_hours",), "only a supplement grants GPU-hours"))
    raise_issues(issues)
    award = change.award
    changes: dict[str, Any] = {"change": change.id, "kind": change.kind,
                               "decision": decision, "note": note}
    if decision == "approved":
        _require_running(award, now)
        granted_until = ensure_utc(until) if until is not None else change.requested_until
        granted_hours = gpu_hours if gpu_hours is not None else change.extra_gpu_hours
        if (change.kind == AwardChangeKind.EARLY_END and granted_until is not None
                and granted_until < now):
            granted_until = now  # asked for a day that has passed while it waited
        new = _apply(award, change.kind, granted_until, granted_hours, now)
        before = {"gpu_hours": award.gpu_hours, "expires_at": award.expires_at}
        _rewrite_periods(session, award, new)
        award.version += 1
        change.granted_until = granted_until
        change.granted_gpu_hours = granted_hours
        change.version = award.version
        changes.update({"version": award.version,
                        "gpu_hours": [before["gpu_hours"], award.gpu_hours],
                        "expires_at": [before["expires_at"], award.expires_at]})
    change.state = decision
    change.decided_by_user_id = actor.id
    change.decided_by = actor
    change.decided_at = now
    change.decision_note = note
    session.flush()
    if decision == "approved":
        record_version(session, award, actor=actor, now=now, change=change)
        # the reports follow the new periods and end
        sync_report_tasks(session, award, final_report_months=final_report_months, now=now)
    record(session, actor, "award_change.decide", "award", award.id, changes, at=now)
    return change


def _rewrite_periods(session: Session, award: Award, new: list[rules.Period]) -> None:
    rows = list(award.periods)
    for row, (s, e, h) in zip(rows, new, strict=False):
        row.starts_at, row.ends_at, row.gpu_hours = s, e, h
    for row in rows[len(new):]:  # released by an early end (they had not started)
        award.periods.remove(row)
        session.delete(row)
    award.gpu_hours = round(sum(h for _s, _e, h in new), 6)
    award.expires_at = new[-1][1]
    session.flush()


def withdraw_change(session: Session, actor: User, change: AwardChange, *,
                    now: datetime) -> AwardChange:
    """The PI takes an open request back."""
    require_project_role(session, actor, change.award.project, {ProjectRole.PI.value})
    if change.state != AwardChangeState.REQUESTED.value:
        raise InvalidTransition(f"award change {change.id} is already {change.state}",
                                field="state")
    change.state = AwardChangeState.WITHDRAWN.value
    change.decided_at = now
    change.decided_by_user_id = actor.id
    change.decided_by = actor
    session.flush()
    record(session, actor, "award_change.withdraw", "award", change.award_id,
           {"change": change.id, "kind": change.kind}, at=now)
    return change


def visible_change(session: Session, user: User, change_id: int) -> AwardChange:
    change = session.get(AwardChange, change_id)
    if change is None or not can_see_project(session, user, change.award.project_id):
        raise NotFound(f"award change {change_id} not found", field="change",
                       hint="List them with `rechenwerk award changes`.")
    return change


def list_changes(session: Session, user: User, *, award_id: int | None = None,
                 state: str | None = None, limit: int = 50,
                 offset: int = 0) -> Page[AwardChange]:
    """Requests the user may see (operators: all), newest first."""
    stmt = select(AwardChange).join(Award, Award.id == AwardChange.award_id).order_by(
        AwardChange.id.desc())
    stmt = only_visible(stmt, Award.project_id, session, user)
    if award_id is not None:
        stmt = stmt.where(AwardChange.award_id == award_id)
    if state is not None:
        stmt = stmt.where(AwardChange.state == check_choice(state, STATES, "state"))
    return paginate(session, stmt, limit, offset)


def award_versions(session: Session, award: Award) -> list[AwardVersion]:
    """The award's history, version 1 first (the caller has checked visibility)."""
    return list(session.scalars(select(AwardVersion).where(
        AwardVersion.award_id == award.id).order_by(AwardVersion.version)))
