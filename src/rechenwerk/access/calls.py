"""Calls for proposals: operators open them for one access mode and the organisation kinds
it admits; a call is upcoming, open or closed (at its end or when an operator closes it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from rechenwerk.access.audit import record
from rechenwerk.access.call_types import get_call_type, type_for_access_mode
from rechenwerk.access.models import AccessMode, Call, CallType, OrgKind, User
from rechenwerk.access.organizations import ORG_KINDS
from rechenwerk.access.paging import Page, paginate
from rechenwerk.access.security import require_operator
from rechenwerk.access.validation import check_choice, check_positive, check_slug, ref_is_id
from rechenwerk.clock import ensure_utc
from rechenwerk.errors import (
    Conflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    raise_collected,
)

ACCESS_MODES = frozenset(m.value for m in AccessMode)

# Who may apply to which kind of call unless the operator says otherwise.
DEFAULT_ELIGIBILITY: dict[str, tuple[str, ...]] = {
    AccessMode.RESEARCH: ("university", "research_institute", "public_agency"),
    AccessMode.INNOVATION: ("sme", "startup"),
    AccessMode.FAST_LANE: tuple(k.value for k in OrgKind),
    AccessMode.PAY_PER_USE: tuple(k.value for k in OrgKind),
}


def call_status(call: Call, now: datetime) -> str:
    """``upcoming``, ``open`` or ``closed`` at ``now``."""
    if call.closed_at is not None and call.closed_at <= now:
        return "closed"
    if now < call.opens_at:
        return "upcoming"
    if now >= call.closes_at:
        return "closed"
    return "open"


def require_open(call: Call, now: datetime) -> None:
    """Conflict unless ``call`` is open at ``now`` (proposals are written and submitted
    to open calls only)."""
    status = call_status(call, now)
    if status != "open":
        when = call.opens_at if status == "upcoming" else (call.closed_at or call.closes_at)
        raise Conflict(
            f"call {call.slug!r} is {status} (since/until {when.isoformat()})",
            field="call",
            hint="Apply to an open call: `rechenwerk call list --status open`.",
        )


def new_call_problems(
    session: Session, actor: User | None, *, slug: str, title: str, access_mode: str,
    opens_at: datetime | None, closes_at: datetime | None, now: datetime,
    eligible_kinds: Sequence[str] | None = None, max_gpu_hours: float | None = None,
    call_type: str | int | None = None, budget_gpu_hours: float | None = None,
) -> tuple[CallType | None, list[str], list[InvalidInput]]:
    """Every rule a new call's fields must meet, checked together (what
    :func:`create_call` refuses; a date None: not given in a usable form, not checked).
    Returns the call's type (None: the access mode is unknown), its eligible kinds and
    the problems found (empty: the fields fit)."""
    found: list[InvalidInput] = []

    def check(fn: Callable[[], object]) -> bool:
        try:
            fn()
        except InvalidInput as exc:
            found.append(exc)
            return False
        return True

    check(lambda: check_slug(slug))
    mode_ok = check(lambda: check_choice(access_mode, ACCESS_MODES, "access_mode"))
    ctype = (get_call_type(session, call_type) if call_type is not None
             else type_for_access_mode(session, access_mode, actor=actor, now=now)
             if mode_ok else None)
    if eligible_kinds is not None:
        kinds = list(eligible_kinds)
    elif ctype is None:
        kinds = []
    elif call_type is not None:
        kinds = list(ctype.eligible_kinds)
    else:
        kinds = list(DEFAULT_ELIGIBILITY[access_mode])
    if not kinds and ctype is not None:
        found.append(InvalidInput("eligible_kinds must name at least one organisation kind",
                                  field="eligible_kinds",
                                  hint="Leave it out to use the call type's or access "
                                       "mode's default."))
    for i, k in enumerate(kinds):
        if k not in ORG_KINDS:
            check(partial(check_choice, k, ORG_KINDS, f"eligible_kinds.{i}"))
    outside = (sorted({k for k in kinds if k in ORG_KINDS} - set(ctype.eligible_kinds))
               if ctype is not None else [])
    if outside and ctype is not None:
        found.append(InvalidInput(
            f"eligible_kinds: call type {ctype.key!r} does not admit {', '.join(outside)}",
            field="eligible_kinds",
            hint="The type admits: " + ", ".join(ctype.eligible_kinds) + "."))
    if (opens_at is not None and closes_at is not None
            and ensure_utc(closes_at) <= ensure_utc(opens_at)):
        found.append(InvalidInput("closes_at must be after opens_at", field="closes_at"))
    cap = max_gpu_hours
    if (cap is not None and check(lambda: check_positive(cap, "max_gpu_hours"))
            and ctype is not None and ctype.min_gpu_hours is not None
            and cap < ctype.min_gpu_hours):
        found.append(InvalidInput(
            f"max_gpu_hours {cap:g} is below the minimum of call type "
            f"{ctype.key!r} ({ctype.min_gpu_hours:g}): no proposal could fit",
            field="max_gpu_hours"))
    if budget_gpu_hours is not None:
        check(lambda: check_positive(budget_gpu_hours, "budget_gpu_hours"))
    if not title.strip():
        found.append(InvalidInput("title must not be empty", field="title"))
    return ctype, kinds, found


def create_call(
    session: Session, actor: User, *, slug: str, title: str, access_mode: str,
    opens_at: datetime, closes_at: datetime, now: datetime, description: str = "",
    eligible_kinds: Sequence[str] | None = None, max_gpu_hours: float | None = None,
    call_type: str | int | None = None, budget_gpu_hours: float | None = None,
) -> Call:
    """Open a call (operators). ``call_type`` (key or id) sets the rules its proposals
    are held to; without it the call gets its access mode's type. Eligible kinds default
    to the type's (named type) or the access mode's default, and must be kinds the type
    admits."""
    require_operator(actor)
    ctype, kinds, found = new_call_problems(
        session, actor, slug=slug, title=title, access_mode=access_mode, opens_at=opens_at,
        closes_at=closes_at, eligible_kinds=eligible_kinds, max_gpu_hours=max_gpu_hours,
        call_type=call_type, budget_gpu_hours=budget_gpu_hours, now=now)
    raise_collected(found)
    assert ctype is not None  # no problems: the type is known
    opens_at, closes_at = ensure_utc(opens_at), ensure_utc(closes_at)
    if session.scalars(select(Call).where(Call.slug == slug)).first():
        raise Conflict(f"call {slug!r} already exists", field="slug")
    call = Call(slug=slug, title=title.strip(), description=description,
                access_mode=access_mode, eligible_kinds=sorted(set(kinds)), opens_at=opens_at,
                closes_at=closes_at, max_gpu_hours=max_gpu_hours, created_at=now,
                call_type_id=ctype.id, call_type=ctype, budget_gpu_hours=budget_gpu_hours)
    session.add(call)
    session.flush()
    record(session, actor, "call.create", "call", call.id,
           {"slug": slug, "access_mode": access_mode, "call_type": ctype.key,
            "eligible_kinds": call.eligible_kinds,
            "opens_at": opens_at, "closes_at": closes_at}, at=now)
    return call


def get_call(session: Session, ref: str | int) -> Call:
    cid = ref_is_id(ref)
    call = session.scalars(
        select(Call).where(Call.id == cid if cid is not None else Call.slug == str(ref))
    ).first()
    if call is None:
        raise NotFound(f"call {ref!r} not found", field="call",
                       hint="List calls with `rechenwerk call list`.")
    return call


def list_calls(
    session: Session, *, now: datetime, access_mode: str | None = None,
    status: str | None = None, limit: int = 50, offset: int = 0,
) -> Page[Call]:
    stmt = select(Call).order_by(Call.opens_at.desc(), Call.id.desc())
    if access_mode:
        stmt = stmt.where(Call.access_mode == check_choice(access_mode, ACCESS_MODES,
                                                           "access_mode"))
    if status:
        check_choice(status, {"open", "closed", "upcoming"}, "status")
        not_closed_early = or_(Call.closed_at.is_(None), Call.closed_at > now)
        if status == "open":
            stmt = stmt.where(Call.opens_at <= now, Call.closes_at > now, not_closed_early)
        elif status == "upcoming":
            stmt = stmt.where(Call.opens_at > now, not_closed_early)
        else:
            stmt = stmt.where(or_(Call.closes_at <= now,
                                  and_(Call.closed_at.is_not(None), Call.closed_at <= now)))
    return paginate(session, stmt, limit, offset)


def close_call(session: Session, actor: User, call: Call, *, now: datetime) -> Call:
    require_operator(actor)
    if call_status(call, now) == "closed":
        raise InvalidTransition(f"call {call.slug!r} is already closed", field="call")
    call.closed_at = now
    record(session, actor, "call.close", "call", call.id, {"closed_at": now}, at=now)
    return call
