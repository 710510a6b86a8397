"""Call types in the database: operators create them from a :class:`CallTypeSpec`
(checked by ``call_type_rules.spec_issues``), calls name one, and proposals are checked
against it and get their due date from it.

A type is not edited once created: calls and submitted proposals were judged by its
rules. An operator who wants other rules creates a new type for the next call.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.access.audit import record
from rechenwerk.access.call_type_rules import ACCESS_MODE_TYPES, CallTypeSpec, spec_issues
from rechenwerk.access.models import CallType, User
from rechenwerk.access.paging import Page, paginate
from rechenwerk.access.security import require_operator
from rechenwerk.access.validation import SLUG_RE, ref_is_id
from rechenwerk.errors import Conflict, FieldIssue, NotFound, raise_issues


def spec_of(row: CallType) -> CallTypeSpec:
    """The pure rules of a stored type."""
    return CallTypeSpec(
        key=row.key, title=row.title, description=row.description,
        min_gpu_hours=row.min_gpu_hours, max_gpu_hours=row.max_gpu_hours,
        duration_months=tuple(row.duration_months), eligible_kinds=tuple(row.eligible_kinds),
        countries=row.countries, review_steps=tuple(row.review_steps),
        decision_working_days=row.decision_working_days,
        submission_mode=row.submission_mode, cutoff_period=row.cutoff_period,
        min_reviews=row.min_reviews)


def _row_of(spec: CallTypeSpec, now: datetime) -> CallType:
    return CallType(
        key=spec.key, title=spec.title.strip(), description=spec.description,
        min_gpu_hours=spec.min_gpu_hours, max_gpu_hours=spec.max_gpu_hours,
        duration_months=sorted(spec.duration_months), eligible_kinds=list(spec.eligible_kinds),
        countries=spec.countries, review_steps=list(spec.review_steps),
        decision_working_days=spec.decision_working_days,
        submission_mode=spec.submission_mode, cutoff_period=spec.cutoff_period,
        min_reviews=spec.min_reviews, created_at=now)


def create_call_type(session: Session, actor: User, spec: CallTypeSpec, *,
                     now: datetime) -> CallType:
    """Store a new type (operators). Every inconsistency is reported at once."""
    require_operator(actor)
    return _store(session, actor, spec, now)


def _store(session: Session, actor: User | None, spec: CallTypeSpec,
           now: datetime) -> CallType:
    issues = list(spec_issues(spec))
    if not SLUG_RE.match(spec.key):
        issues.insert(0, FieldIssue(("key",), f"{spec.key!r} is not valid: use 2-63 "
                                    "lower-case letters, digits, '-' or '_', starting "
                                    "with a letter"))
    if not spec.title.strip():
        issues.append(FieldIssue(("title",), "must not be empty"))
    raise_issues(issues)
    if session.scalars(select(CallType).where(CallType.key == spec.key)).first():
        raise Conflict(f"call type {spec.key!r} already exists", field="key",
                       hint="Types are not changed once created; choose another key for "
                            "new rules.")
    row = _row_of(spec, now)
    session.add(row)
    session.flush()
    record(session, actor, "call_type.create", "call_type", row.id,
           {"key": row.key, "min_gpu_hours": row.min_gpu_hours,
            "max_gpu_hours": row.max_gpu_hours, "duration_months": row.duration_months,
            "eligible_kinds": row.eligible_kinds, "countries": row.countries,
            "review_steps": row.review_steps,
            "decision_working_days": row.decision_working_days,
            "submission_mode": row.submission_mode, "cutoff_period": row.cutoff_period,
            "min_reviews": row.min_reviews},
           at=now)
    return row


def ensure_call_types(session: Session, actor: User | None, specs: Iterable[CallTypeSpec],
                      *, now: datetime) -> list[CallType]:
    """The stored types of ``specs``, creating those that do not exist yet (the demo's,
    the access modes' defaults); existing ones are returned as they are. ``actor`` None:
    the system (audited as such)."""
    out = []
    for spec in specs:
        row = session.scalars(select(CallType).where(CallType.key == spec.key)).first()
        out.append(row if row is not None else _store(session, actor, spec, now))
    return out


def get_call_type(session: Session, ref: str | int) -> CallType:
    tid = ref_is_id(ref)
    row = session.scalars(select(CallType).where(
        CallType.id == tid if tid is not None else CallType.key == str(ref))).first()
    if row is None:
        raise NotFound(f"call type {ref!r} not found", field="call_type",
                       hint="List call types with `rechenwerk call-type list`.")
    return row


def type_for_access_mode(session: Session, access_mode: str, *, actor: User | None,
                         now: datetime) -> CallType:
    """The type a call of ``access_mode`` gets when none is named: the mode's own type
    (made by migration 0020; created here if a database lacks it)."""
    return ensure_call_types(session, actor, [ACCESS_MODE_TYPES[access_mode]], now=now)[0]


def list_call_types(session: Session, *, limit: int = 50, offset: int = 0) -> Page[CallType]:
    return paginate(session, select(CallType).order_by(CallType.id), limit, offset)
