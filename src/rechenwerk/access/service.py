"""Access services: organisations, users, projects and roles, calls, proposals, reviews,
awards with periods, pay-per-use accounts.

Every function takes ``*, session`` (or ``session`` first) and never commits; the API
dependency or the CLI wrapper owns the transaction. Authorisation rules live here, not in
the routers: members see only their projects (others get NotFound so existence does not
leak), reviewers see only proposals assigned to them, operators create calls, awards,
organisations and users. Every change to projects, memberships, proposals, awards and
accounts is written to the audit log in the same transaction.
"""

from __future__ import annotations

import calendar
import itertools
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from rechenwerk.access import estimates
from rechenwerk.access.audit import record
from rechenwerk.access.gpu_types import validate_gpu_type
from rechenwerk.access.models import (
    AccessMode,
    AuditEntry,
    Award,
    AwardPeriod,
    Call,
    Organization,
    OrgKind,
    PayPerUseAccount,
    PayPerUsePrice,
    Project,
    ProjectMembership,
    ProjectRole,
    Proposal,
    ProposalState,
    Review,
    User,
)
from rechenwerk.access.security import hash_password, require_operator
from rechenwerk.clock import ensure_utc
from rechenwerk.errors import (
    Conflict,
    FieldIssue,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
)

T = TypeVar("T")

SLUG_RE = re.compile(r"^[a-z][a-z0-9_-]{1,62}$")
USERNAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{1,62}$")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
MIN_SCORE, MAX_SCORE = 1, 5
MAX_LIMIT = 500

ALL_ROLES = frozenset(r.value for r in ProjectRole)
WORK_ROLES = frozenset({ProjectRole.PI.value, ProjectRole.MEMBER.value})

# Who may apply to which kind of call unless the operator says otherwise.
DEFAULT_ELIGIBILITY: dict[str, tuple[str, ...]] = {
    AccessMode.RESEARCH: ("university", "research_institute", "public_agency"),
    AccessMode.INNOVATION: ("sme", "startup"),
    AccessMode.FAST_LANE: tuple(k.value for k in OrgKind),
    AccessMode.PAY_PER_USE: tuple(k.value for k in OrgKind),
}

# The proposal life cycle as an explicit table: state -> states it may move to.
PROPOSAL_TRANSITIONS: dict[ProposalState, frozenset[ProposalState]] = {
    ProposalState.DRAFT: frozenset({ProposalState.SUBMITTED, ProposalState.WITHDRAWN}),
    ProposalState.SUBMITTED: frozenset({ProposalState.UNDER_REVIEW, ProposalState.REJECTED,
                                        ProposalState.WITHDRAWN}),
    ProposalState.UNDER_REVIEW: frozenset({ProposalState.ACCEPTED, ProposalState.REJECTED,
                                           ProposalState.WITHDRAWN}),
    ProposalState.ACCEPTED: frozenset(),
    ProposalState.REJECTED: frozenset(),
    ProposalState.WITHDRAWN: frozenset(),
}
# Fields a PI may change while the proposal is a draft (PATCH /proposals/{id}).
EDITABLE_PROPOSAL_FIELDS = ("title", "abstract", "justification", "gpu_type",
                            "requested_gpu_hours", "estimate")


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def paginate(session: Session, stmt: Select[T], limit: int, offset: int) -> Page[T]:
    if limit < 1 or limit > MAX_LIMIT:
        raise InvalidInput(f"limit must be 1..{MAX_LIMIT}, got {limit}", field="limit")
    if offset < 0:
        raise InvalidInput(f"offset must be >= 0, got {offset}", field="offset")
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    items = list(session.scalars(stmt.limit(limit).offset(offset)).unique())
    return Page(items=items, total=int(total or 0), limit=limit, offset=offset)


def _ref_is_id(ref: str | int) -> int | None:
    if isinstance(ref, int):
        return ref
    return int(ref) if ref.isdigit() else None


def _check_choice(value: str, choices: Collection[str], field: str) -> str:
    if value not in choices:
        raise InvalidInput(
            f"{field} {value!r} is not valid",
            field=field,
            hint="Use one of: " + ", ".join(sorted(choices)) + ".",
        )
    return value


def _check_slug(value: str, field: str = "slug") -> str:
    if not SLUG_RE.match(value):
        raise InvalidInput(
            f"{field} {value!r} is not valid",
            field=field,
            hint="Use 2-63 lower-case letters, digits, '-' or '_', starting with a letter.",
        )
    return value


def _positive(value: float, field: str, *, allow_zero: bool = False) -> float:
    ok = value >= 0 if allow_zero else value > 0
    if not ok or value != value or value == float("inf"):
        raise InvalidInput(
            f"{field} must be {'>= 0' if allow_zero else '> 0'}, got {value}",
            field=field,
        )
    return float(value)


def _filter_id(session: Session, user: User,
               getter: Callable[[Session, str | int], Project | User], ref: str | int) -> int:
    """The id behind a list filter. Operators get NotFound for a typo; for everyone else an
    unknown and an invisible reference both give an empty list, so existence does not
    leak through filters."""
    try:
        return getter(session, ref).id
    except NotFound:
        if user.is_operator:
            raise
        return -1


# --------------------------------------------------------------------------- organisations


def create_organization(
    session: Session, actor: User, *, name: str, kind: str, country: str, now: datetime
) -> Organization:
    require_operator(actor)
    _check_choice(kind, {k.value for k in OrgKind}, "kind")
    country = country.upper()
    if not COUNTRY_RE.match(country):
        raise InvalidInput(f"country {country!r} is not an ISO 3166 alpha-2 code",
                           field="country", hint="e.g. DE, FR, IT, NL.")
    if not name.strip():
        raise InvalidInput("name must not be empty", field="name")
    if session.scalars(select(Organization).where(Organization.name == name)).first():
        raise Conflict(f"organisation {name!r} already exists", field="name")
    org = Organization(name=name.strip(), kind=kind, country=country, created_at=now)
    session.add(org)
    session.flush()
    record(session, actor, "organization.create", "organization", org.id,
           {"name": org.name, "kind": kind, "country": country}, at=now)
    return org


def get_organization(session: Session, ref: str | int) -> Organization:
    oid = _ref_is_id(ref)
    stmt = select(Organization).where(
        Organization.id == oid if oid is not None else Organization.name == str(ref)
    )
    org = session.scalars(stmt).first()
    if org is None:
        raise NotFound(f"organisation {ref!r} not found", field="organization",
                       hint="List them with `rechenwerk org list`.")
    return org


def list_organizations(
    session: Session, *, kind: str | None = None, country: str | None = None,
    limit: int = 50, offset: int = 0,
) -> Page[Organization]:
    stmt = select(Organization).order_by(Organization.name)
    if kind:
        stmt = stmt.where(Organization.kind == _check_choice(kind, {k.value for k in OrgKind},
                                                              "kind"))
    if country:
        stmt = stmt.where(Organization.country == country.upper())
    return paginate(session, stmt, limit, offset)


# --------------------------------------------------------------------------- users


def create_user(
    session: Session,
    actor: User | None,
    *,
    username: str,
    email: str,
    now: datetime,
    full_name: str = "",
    organization: str | int | None = None,
    is_operator: bool = False,
    is_reviewer: bool = False,
    password: str | None = None,
) -> User:
    """Create a user. ``actor`` None is the bootstrap path (``rechenwerk admin user create``
    on the server machine); through the API only operators may."""
    if actor is not None:
        require_operator(actor)
    if not USERNAME_RE.match(username):
        raise InvalidInput(f"username {username!r} is not valid", field="username",
                           hint="2-63 lower-case letters, digits, '.', '-', '_'.")
    if "@" not in email:
        raise InvalidInput(f"email {email!r} is not an e-mail address", field="email")
    if session.scalars(select(User).where(User.username == username)).first():
        raise Conflict(f"user {username!r} already exists", field="username")
    org = get_organization(session, organization) if organization is not None else None
    user = User(
        username=username, email=email, full_name=full_name,
        organization_id=org.id if org else None, organization=org,
        is_operator=is_operator, is_reviewer=is_reviewer,
        password_hash=hash_password(password) if password else None,
        is_active=True, created_at=now,
    )
    session.add(user)
    session.flush()
    record(session, actor, "user.create", "user", user.id,
           {"username": username, "organization": org.name if org else None,
            "is_operator": is_operator, "is_reviewer": is_reviewer}, at=now)
    return user


def get_user(session: Session, ref: str | int) -> User:
    uid = _ref_is_id(ref)
    stmt = select(User).where(User.id == uid if uid is not None else User.username == str(ref))
    user = session.scalars(stmt).first()
    if user is None:
        raise NotFound(f"user {ref!r} not found", field="user")
    return user


def list_users(
    session: Session, actor: User, *, organization: str | int | None = None,
    is_reviewer: bool | None = None, is_operator: bool | None = None,
    limit: int = 50, offset: int = 0,
) -> Page[User]:
    require_operator(actor)
    stmt = select(User).order_by(User.username)
    if organization is not None:
        stmt = stmt.where(User.organization_id == get_organization(session, organization).id)
    if is_reviewer is not None:
        stmt = stmt.where(User.is_reviewer == is_reviewer)
    if is_operator is not None:
        stmt = stmt.where(User.is_operator == is_operator)
    return paginate(session, stmt, limit, offset)


def update_user(
    session: Session, actor: User, user: User, *, now: datetime,
    full_name: str | None = None, email: str | None = None,
    organization: str | int | None = None, is_operator: bool | None = None,
    is_reviewer: bool | None = None, is_active: bool | None = None,
) -> User:
    """Change a user's profile or global roles (operators). Deactivated users cannot
    authenticate; an operator cannot demote or deactivate themselves (no lock-out)."""
    require_operator(actor)
    if user.id == actor.id and (is_operator is False or is_active is False):
        raise Conflict("operators cannot demote or deactivate themselves", field="is_operator",
                       hint="Ask another operator.")
    # Validate everything before changing anything.
    if email is not None and "@" not in email:
        raise InvalidInput(f"email {email!r} is not an e-mail address", field="email")
    org = get_organization(session, organization) if organization is not None else None
    changes: dict[str, Any] = {}

    def put(name: str, value: Any) -> None:
        old = getattr(user, name)
        if value is not None and value != old:
            changes[name] = [old, value]
            setattr(user, name, value)

    put("full_name", full_name)
    put("email", email)
    if org is not None and org.id != user.organization_id:
        changes["organization"] = [user.organization.name if user.organization else None,
                                   org.name]
        user.organization_id = org.id
        user.organization = org
    put("is_operator", is_operator)
    put("is_reviewer", is_reviewer)
    put("is_active", is_active)
    if changes:
        session.flush()
        record(session, actor, "user.update", "user", user.id, changes, at=now)
    return user


def set_password(session: Session, actor: User | None, user: User, password: str,
                 *, now: datetime) -> None:
    if actor is not None and actor.id != user.id:
        require_operator(actor)
    user.password_hash = hash_password(password)
    record(session, actor, "user.set_password", "user", user.id, {}, at=now)


# --------------------------------------------------------------------------- projects


def get_project(session: Session, ref: str | int) -> Project:
    """A project by slug or id; NotFound otherwise. No authorisation (see visible_project)."""
    pid = _ref_is_id(ref)
    stmt = select(Project).where(Project.id == pid if pid is not None else Project.slug == ref)
    project = session.scalars(stmt).first()
    if project is None:
        raise NotFound(f"project {ref!r} not found", field="project",
                       hint="List your projects with `rechenwerk project list`.")
    return project


def membership(session: Session, user: User, project: Project) -> ProjectMembership | None:
    return session.get(ProjectMembership, (project.id, user.id))


def require_project_role(
    session: Session,
    user: User,
    project: Project,
    roles: Collection[str] = WORK_ROLES,
) -> ProjectMembership | None:
    """The user's membership when it has one of ``roles``. Operators always pass (None).
    Non-members get NotFound (existence does not leak); members with another role get
    PermissionDenied."""
    m = membership(session, user, project)
    check_role(user, project.slug, m.role if m is not None else None, roles)
    return m


def check_role(user: User, project_slug: str, role: str | None,
               roles: Collection[str] = WORK_ROLES) -> None:
    """The rule of :func:`require_project_role` on a role already read (``None``: not a
    member): operators pass, non-members get NotFound, other roles PermissionDenied."""
    if user.is_operator:
        return
    if role is None:
        raise NotFound(f"project {project_slug!r} not found", field="project",
                       hint="List your projects with `rechenwerk project list`.")
    if role not in roles:
        raise PermissionDenied(
            f"your role {role!r} in project {project_slug!r} does not allow this",
            field="project",
            hint="Needs role: " + " or ".join(sorted(roles)) + ". Ask the project's PI.",
        )


def visible_project(session: Session, user: User, ref: str | int) -> Project:
    """The project if ``user`` may see it (any role, or operator); NotFound otherwise."""
    project = get_project(session, ref)
    require_project_role(session, user, project, ALL_ROLES)
    return project


def create_project(
    session: Session, actor: User, *, slug: str, title: str, now: datetime,
    description: str = "", pi: str | int | None = None,
) -> Project:
    """Create a project. Anyone may create one with themselves as PI; operators may name
    another PI. The project belongs to the PI's organisation."""
    _check_slug(slug)
    if not title.strip():
        raise InvalidInput("title must not be empty", field="title")
    pi_user = actor if pi is None else get_user(session, pi)
    if pi_user.id != actor.id:
        require_operator(actor)
    if pi_user.organization_id is None:
        raise InvalidInput(f"PI {pi_user.username!r} belongs to no organisation", field="pi",
                           hint="An operator sets the user's organisation first.")
    if session.scalars(select(Project).where(Project.slug == slug)).first():
        raise Conflict(f"project {slug!r} already exists", field="slug",
                       hint="Pick another slug; it becomes the Slurm account name.")
    project = Project(slug=slug, title=title.strip(), description=description,
                      organization_id=pi_user.organization_id, pi_user_id=pi_user.id,
                      created_at=now)
    session.add(project)
    session.flush()
    session.add(ProjectMembership(project_id=project.id, user_id=pi_user.id,
                                  role=ProjectRole.PI.value, created_at=now))
    session.flush()
    record(session, actor, "project.create", "project", project.id,
           {"slug": slug, "title": project.title, "pi": pi_user.username}, at=now)
    return project


def list_projects(
    session: Session, user: User, *, organization: str | int | None = None,
    member: str | None = None, limit: int = 50, offset: int = 0,
) -> Page[Project]:
    stmt = select(Project).order_by(Project.slug)
    if not user.is_operator:
        stmt = stmt.where(Project.id.in_(
            select(ProjectMembership.project_id).where(ProjectMembership.user_id == user.id)))
    if organization is not None:
        stmt = stmt.where(Project.organization_id == get_organization(session, organization).id)
    if member is not None:
        stmt = stmt.where(Project.id.in_(
            select(ProjectMembership.project_id).where(
                ProjectMembership.user_id == _filter_id(session, user, get_user, member))))
    return paginate(session, stmt, limit, offset)


def project_members(session: Session, project: Project) -> list[ProjectMembership]:
    return list(session.scalars(
        select(ProjectMembership).where(ProjectMembership.project_id == project.id)
        .order_by(ProjectMembership.created_at, ProjectMembership.user_id)
    ))


def add_member(
    session: Session, actor: User, project: Project, *, username: str, role: str,
    now: datetime,
) -> ProjectMembership:
    """Add a member (or change a member's role). The PI or an operator may."""
    require_project_role(session, actor, project, {ProjectRole.PI.value})
    _check_choice(role, {ProjectRole.MEMBER.value, ProjectRole.VIEWER.value}, "role")
    user = get_user(session, username)
    if not user.is_active:
        raise InvalidInput(f"user {username!r} is deactivated", field="username")
    existing = membership(session, user, project)
    if existing is not None:
        if existing.role == ProjectRole.PI.value:
            raise Conflict(f"{username!r} is the PI of {project.slug!r}", field="username",
                           hint="The PI's role cannot be changed here.")
        if existing.role == role:
            raise Conflict(f"{username!r} is already {role} of {project.slug!r}",
                           field="username")
        old = existing.role
        existing.role = role
        record(session, actor, "membership.update", "project", project.id,
               {"user": username, "role": [old, role]}, at=now)
        return existing
    m = ProjectMembership(project_id=project.id, user_id=user.id, role=role, created_at=now)
    session.add(m)
    session.flush()
    record(session, actor, "membership.add", "project", project.id,
           {"user": username, "role": role}, at=now)
    return m


def remove_member(
    session: Session, actor: User, project: Project, *, username: str, now: datetime
) -> None:
    require_project_role(session, actor, project, {ProjectRole.PI.value})
    user = get_user(session, username)
    m = membership(session, user, project)
    if m is None:
        raise NotFound(f"{username!r} is not a member of {project.slug!r}", field="username")
    if m.role == ProjectRole.PI.value:
        raise Conflict(f"{username!r} is the PI of {project.slug!r} and cannot be removed",
                       field="username")
    session.delete(m)
    session.flush()
    record(session, actor, "membership.remove", "project", project.id,
           {"user": username, "role": m.role}, at=now)


# --------------------------------------------------------------------------- calls


def call_status(call: Call, now: datetime) -> str:
    """``upcoming``, ``open`` or ``closed`` at ``now``."""
    if call.closed_at is not None and call.closed_at <= now:
        return "closed"
    if now < call.opens_at:
        return "upcoming"
    if now >= call.closes_at:
        return "closed"
    return "open"


def create_call(
    session: Session, actor: User, *, slug: str, title: str, access_mode: str,
    opens_at: datetime, closes_at: datetime, now: datetime, description: str = "",
    eligible_kinds: Sequence[str] | None = None, max_gpu_hours: float | None = None,
) -> Call:
    require_operator(actor)
    _check_slug(slug)
    _check_choice(access_mode, {m.value for m in AccessMode}, "access_mode")
    kinds = (list(eligible_kinds) if eligible_kinds is not None
             else list(DEFAULT_ELIGIBILITY[access_mode]))
    if not kinds:
        raise InvalidInput("eligible_kinds must name at least one organisation kind",
                           field="eligible_kinds",
                           hint="Leave it out to use the access mode's default.")
    for i, k in enumerate(kinds):
        _check_choice(k, {o.value for o in OrgKind}, f"eligible_kinds.{i}")
    opens_at, closes_at = ensure_utc(opens_at), ensure_utc(closes_at)
    if closes_at <= opens_at:
        raise InvalidInput("closes_at must be after opens_at", field="closes_at")
    if max_gpu_hours is not None:
        _positive(max_gpu_hours, "max_gpu_hours")
    if not title.strip():
        raise InvalidInput("title must not be empty", field="title")
    if session.scalars(select(Call).where(Call.slug == slug)).first():
        raise Conflict(f"call {slug!r} already exists", field="slug")
    call = Call(slug=slug, title=title.strip(), description=description,
                access_mode=access_mode, eligible_kinds=sorted(set(kinds)), opens_at=opens_at,
                closes_at=closes_at, max_gpu_hours=max_gpu_hours, created_at=now)
    session.add(call)
    session.flush()
    record(session, actor, "call.create", "call", call.id,
           {"slug": slug, "access_mode": access_mode, "eligible_kinds": call.eligible_kinds,
            "opens_at": opens_at, "closes_at": closes_at}, at=now)
    return call


def get_call(session: Session, ref: str | int) -> Call:
    cid = _ref_is_id(ref)
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
        stmt = stmt.where(Call.access_mode == _check_choice(
            access_mode, {m.value for m in AccessMode}, "access_mode"))
    if status:
        _check_choice(status, {"open", "closed", "upcoming"}, "status")
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


def _require_open(call: Call, now: datetime) -> None:
    status = call_status(call, now)
    if status != "open":
        when = call.opens_at if status == "upcoming" else (call.closed_at or call.closes_at)
        raise Conflict(
            f"call {call.slug!r} is {status} (since/until {when.isoformat()})",
            field="call",
            hint="Apply to an open call: `rechenwerk call list --status open`.",
        )


# --------------------------------------------------------------------------- proposals


def _transition(session: Session, actor: User, proposal: Proposal, to: ProposalState,
                now: datetime, extra: Mapping[str, Any] | None = None) -> None:
    current = ProposalState(proposal.state)
    if to not in PROPOSAL_TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in PROPOSAL_TRANSITIONS[current])) or "none"
        raise InvalidTransition(
            f"proposal {proposal.id} cannot move from {current.value} to {to.value}",
            field="state",
            hint=f"From {current.value} it may move to: {allowed}.",
        )
    proposal.state = to.value
    record(session, actor, f"proposal.{to.value}", "proposal", proposal.id,
           {"state": [current.value, to.value], **(extra or {})}, at=now)


def _proposal_issues(call: Call, *, title: str | None = None,
                     requested_gpu_hours: float | None = None) -> list[FieldIssue]:
    """What is wrong with a proposal's title and requested GPU-hours (None: not checked),
    shared by create and edit so both refuse the same input with the same words."""
    issues: list[FieldIssue] = []
    if title is not None and not title.strip():
        issues.append(FieldIssue(("title",), "must not be empty"))
    if requested_gpu_hours is None:
        return issues
    if not requested_gpu_hours > 0 or requested_gpu_hours == float("inf"):
        issues.append(FieldIssue(("requested_gpu_hours",),
                                 f"must be a positive number of GPU-hours, got "
                                 f"{requested_gpu_hours}"))
    elif call.max_gpu_hours is not None and requested_gpu_hours > call.max_gpu_hours:
        issues.append(FieldIssue(("requested_gpu_hours",),
                                 f"{requested_gpu_hours:g} GPU-hours exceed the call's "
                                 f"maximum of {call.max_gpu_hours:g}"))
    return issues


def _raise_issues(issues: list[FieldIssue]) -> None:
    if issues:
        raise InvalidInput(f"{issues[0].path}: {issues[0].message}", field=issues[0].path,
                           issues=issues)


def _estimate_issues(inputs: Mapping[str, Any] | None,
                     proposal_gpu: str | None) -> tuple[estimates.Estimate | None,
                                                        list[FieldIssue]]:
    """The computed estimate of ``inputs`` (None if not given) and what is wrong with it:
    planner errors under ``estimate.<field>``, or a GPU type other than the proposal's
    (``proposal_gpu``; None when that is itself invalid and reported elsewhere)."""
    if inputs is None:
        return None, []
    try:
        est = estimates.compute(inputs)
    except InvalidInput as exc:
        return None, list(exc.issues) or [FieldIssue(("estimate",), exc.message)]
    mismatch = estimates.gpu_mismatch(est.gpu, proposal_gpu) if proposal_gpu else None
    if mismatch:
        return None, [FieldIssue(("estimate", "gpu"), mismatch)]
    return est, []


def _set_estimate(proposal: Proposal, est: estimates.Estimate | None, now: datetime) -> None:
    proposal.estimate_inputs = est.inputs if est else None
    proposal.estimate_result = est.result if est else None
    proposal.estimate_attached_at = now if est else None


def create_proposal(
    session: Session, actor: User, *, call: Call, project: Project, title: str,
    gpu_type: str, requested_gpu_hours: float, now: datetime, abstract: str = "",
    justification: str = "", estimate: Mapping[str, Any] | None = None,
) -> Proposal:
    """A draft proposal of ``project`` (its PI or an operator) to an open call that admits
    the project's organisation kind. ``estimate``: optional training-estimate inputs (the
    schema of ``POST /api/v1/plan/train``) for the proposal's GPU type; the planner's
    result is computed and stored with them."""
    require_project_role(session, actor, project, {ProjectRole.PI.value})
    _raise_issues(_proposal_issues(call, title=title, requested_gpu_hours=requested_gpu_hours))
    gpu_type = validate_gpu_type(gpu_type)
    est, issues = _estimate_issues(estimate, gpu_type)
    _raise_issues(issues)
    _require_open(call, now)
    kind = project.organization.kind
    if kind not in call.eligible_kinds:
        raise PermissionDenied(
            f"organisations of kind {kind!r} are not eligible for call {call.slug!r}",
            field="call",
            hint="Eligible kinds: " + ", ".join(call.eligible_kinds) + ". Choose another call.",
        )
    proposal = Proposal(
        call_id=call.id, call=call, project_id=project.id, project=project,
        applicant_user_id=actor.id, applicant=actor, title=title.strip(), abstract=abstract,
        justification=justification, gpu_type=gpu_type,
        requested_gpu_hours=float(requested_gpu_hours), state=ProposalState.DRAFT.value,
        created_at=now,
    )
    _set_estimate(proposal, est, now)
    session.add(proposal)
    session.flush()
    changes: dict[str, Any] = {"call": call.slug, "project": project.slug,
                               "gpu_type": gpu_type,
                               "requested_gpu_hours": proposal.requested_gpu_hours}
    if est is not None:
        changes["estimate"] = estimates.audit_value(est.inputs, est.result)
    record(session, actor, "proposal.create", "proposal", proposal.id, changes, at=now)
    return proposal


def _assigned_review(session: Session, user: User, proposal: Proposal) -> Review | None:
    return session.scalars(select(Review).where(
        Review.proposal_id == proposal.id, Review.reviewer_user_id == user.id)).first()


def visible_proposal(session: Session, user: User, proposal_id: int) -> Proposal:
    """The proposal if ``user`` is an operator, a member of its project or an assigned
    reviewer; NotFound otherwise."""
    proposal = session.get(Proposal, proposal_id)
    if proposal is not None and (
        user.is_operator
        or membership(session, user, proposal.project) is not None
        or _assigned_review(session, user, proposal) is not None
    ):
        return proposal
    raise NotFound(f"proposal {proposal_id} not found", field="proposal",
                   hint="List the proposals you can see with `rechenwerk proposal list`.")


def list_proposals(
    session: Session, user: User, *, call: str | int | None = None,
    project: str | int | None = None, state: str | None = None,
    limit: int = 50, offset: int = 0,
) -> Page[Proposal]:
    stmt = select(Proposal).order_by(Proposal.id)
    if not user.is_operator:
        stmt = stmt.where(or_(
            Proposal.project_id.in_(select(ProjectMembership.project_id)
                                    .where(ProjectMembership.user_id == user.id)),
            Proposal.id.in_(select(Review.proposal_id)
                            .where(Review.reviewer_user_id == user.id)),
        ))
    if call is not None:
        stmt = stmt.where(Proposal.call_id == get_call(session, call).id)
    if project is not None:
        stmt = stmt.where(Proposal.project_id == _filter_id(session, user, get_project, project))
    if state is not None:
        stmt = stmt.where(Proposal.state == _check_choice(
            state, {s.value for s in ProposalState}, "state"))
    return paginate(session, stmt, limit, offset)


def require_proposal_pi(session: Session, actor: User, proposal: Proposal,
                         doing: str) -> None:
    """Only the project's PI (or an operator) changes a proposal. Callers have already
    checked that ``actor`` may see it (``visible_proposal``): members in another role and
    assigned reviewers get PermissionDenied, everyone else NotFound."""
    if actor.is_operator:
        return
    m = membership(session, actor, proposal.project)
    if m is not None and m.role == ProjectRole.PI.value:
        return
    if m is None and _assigned_review(session, actor, proposal) is None:
        raise NotFound(f"proposal {proposal.id} not found", field="proposal")
    raise PermissionDenied(
        f"only the PI of project {proposal.project.slug!r} may {doing} proposal {proposal.id}",
        field="proposal", hint="Ask the project's PI.")


def update_proposal(
    session: Session, actor: User, proposal: Proposal, *, now: datetime,
    title: str | None = None, abstract: str | None = None, justification: str | None = None,
    gpu_type: str | None = None, requested_gpu_hours: float | None = None,
    estimate: Mapping[str, Any] | None = None, remove_estimate: bool = False,
) -> Proposal:
    """Change a draft (its PI or an operator); None leaves a field as it is. The same
    checks as :func:`create_proposal` (title, GPU type, the call's maximum, the estimate);
    every field is checked before any is changed. ``estimate`` replaces the attached
    estimate, ``remove_estimate`` drops it. Each change is audited as
    ``field: [old, new]``."""
    require_proposal_pi(session, actor, proposal, "edit")
    given = {"title": title, "abstract": abstract, "justification": justification,
             "gpu_type": gpu_type, "requested_gpu_hours": requested_gpu_hours,
             "estimate": estimate if estimate is not None else (True if remove_estimate
                                                                 else None)}
    if proposal.state != ProposalState.DRAFT.value:
        raise Conflict(
            f"proposal {proposal.id} is {proposal.state.replace('_', ' ')}; only drafts can "
            "be edited (the reviewers assess what was submitted)",
            field="state",
            hint="Withdraw it and write a new proposal"
                 + (f": `rechenwerk proposal withdraw {proposal.id}`."
                    if proposal.state in (ProposalState.SUBMITTED.value,
                                          ProposalState.UNDER_REVIEW.value) else "."))
    if all(v is None for v in given.values()):
        raise InvalidInput("nothing to change", field="proposal",
                           hint="Give at least one of: "
                                + ", ".join(EDITABLE_PROPOSAL_FIELDS) + ".")
    if estimate is not None and remove_estimate:
        raise InvalidInput("estimate: give new estimate inputs or remove the estimate, not "
                           "both", field="estimate")
    issues = _proposal_issues(proposal.call, title=title,
                              requested_gpu_hours=requested_gpu_hours)
    canonical_gpu = None
    gpu_ok = True
    if gpu_type is not None:
        try:
            canonical_gpu = validate_gpu_type(gpu_type)
        except InvalidInput as exc:
            gpu_ok = False
            issues.append(FieldIssue(("gpu_type",), exc.message + (
                f". {exc.hint}" if exc.hint else "")))
    final_gpu = canonical_gpu or proposal.gpu_type
    est, est_issues = _estimate_issues(estimate, final_gpu if gpu_ok else None)
    issues.extend(est_issues)
    if (estimate is None and not remove_estimate and canonical_gpu is not None
            and proposal.estimate_result is not None):
        # The kept estimate must still match: a GPU change without a new estimate would
        # leave reviewers comparing GPU-hours of different hardware.
        kept_gpu = str(proposal.estimate_result["hardware"]["gpu"])
        if estimates.gpu_mismatch(kept_gpu, canonical_gpu):
            issues.append(FieldIssue(("gpu_type",), (
                f"the attached estimate is for {kept_gpu}, not {canonical_gpu}; attach a new "
                f"estimate on {canonical_gpu} or remove it")))
    _raise_issues(issues)
    new: dict[str, Any] = {
        "title": title.strip() if title is not None else None,
        "abstract": abstract, "justification": justification, "gpu_type": canonical_gpu,
        "requested_gpu_hours": (float(requested_gpu_hours)
                                if requested_gpu_hours is not None else None),
    }
    changes: dict[str, Any] = {}
    for name in EDITABLE_PROPOSAL_FIELDS:
        if name == "estimate":
            continue
        value, old = new[name], getattr(proposal, name)
        if value is not None and value != old:
            changes[name] = [old, value]
            setattr(proposal, name, value)
    if est is not None or remove_estimate:
        old_est = estimates.audit_value(proposal.estimate_inputs, proposal.estimate_result)
        new_est = estimates.audit_value(est.inputs, est.result) if est else None
        # Same inputs and same result: nothing changed (the attach time stays, too).
        same = (est is not None and est.inputs == proposal.estimate_inputs
                and est.result == proposal.estimate_result)
        if not same and (old_est is not None or new_est is not None):
            changes["estimate"] = [old_est, new_est]
            _set_estimate(proposal, est, now)
    if changes:
        session.flush()
        record(session, actor, "proposal.update", "proposal", proposal.id, changes, at=now)
    return proposal


def withdraw_proposal(session: Session, actor: User, proposal: Proposal, *, now: datetime,
                      reason: str = "") -> Proposal:
    """Withdraw a proposal that is not decided yet (its PI or an operator). Terminal: open
    reviews are no longer requested (reviewers cannot submit them any more)."""
    require_proposal_pi(session, actor, proposal, "withdraw")
    if proposal.state in (ProposalState.ACCEPTED.value, ProposalState.REJECTED.value):
        raise InvalidTransition(
            f"proposal {proposal.id} was already {proposal.state}"
            + (f" on {proposal.decided_at:%Y-%m-%d}" if proposal.decided_at else "")
            + "; a decided proposal cannot be withdrawn",
            field="state",
            hint="An award is not used unless jobs run; ask an operator to change the award."
            if proposal.state == ProposalState.ACCEPTED.value else None)
    if proposal.state == ProposalState.WITHDRAWN.value:
        raise InvalidTransition(f"proposal {proposal.id} is already withdrawn", field="state")
    open_reviews = [r.reviewer.username for r in session.scalars(
        select(Review).where(Review.proposal_id == proposal.id,
                             Review.submitted_at.is_(None)).order_by(Review.id))]
    extra: dict[str, Any] = {"reason": reason.strip()} if reason.strip() else {}
    if open_reviews:
        extra["open_reviews_cancelled"] = open_reviews
    _transition(session, actor, proposal, ProposalState.WITHDRAWN, now, extra)
    proposal.withdrawn_at = now
    proposal.withdrawn_by_user_id = actor.id
    proposal.withdrawn_by = actor
    return proposal


def submit_proposal(session: Session, actor: User, proposal: Proposal, *,
                    now: datetime) -> Proposal:
    require_project_role(session, actor, proposal.project, {ProjectRole.PI.value})
    if proposal.state == ProposalState.DRAFT.value:
        _require_open(proposal.call, now)
    _transition(session, actor, proposal, ProposalState.SUBMITTED, now)
    proposal.submitted_at = now
    return proposal


def assign_reviewer(session: Session, actor: User, proposal: Proposal, *, reviewer: str | int,
                    now: datetime) -> Review:
    """Assign a reviewer (operators). Refuses non-reviewers and reviewers from the
    applicant's organisation (conflict of interest). The first assignment moves the
    proposal from submitted to under_review."""
    require_operator(actor)
    user = get_user(session, reviewer)
    if not user.is_reviewer:
        raise InvalidInput(f"user {user.username!r} is not a reviewer", field="reviewer",
                           hint="Pick a user with the reviewer role.")
    if user.organization_id is not None and (
        user.organization_id == proposal.project.organization_id
    ):
        raise Conflict(
            f"conflict of interest: reviewer {user.username!r} belongs to the applicant's "
            f"organisation ({proposal.project.organization.name})",
            field="reviewer",
            hint="Assign a reviewer from another organisation.",
        )
    if membership(session, user, proposal.project) is not None:
        raise Conflict(f"conflict of interest: {user.username!r} is a member of the project",
                       field="reviewer", hint="Assign a reviewer from outside the project.")
    if _assigned_review(session, user, proposal) is not None:
        raise Conflict(f"{user.username!r} is already assigned to proposal {proposal.id}",
                       field="reviewer")
    if proposal.state == ProposalState.SUBMITTED.value:
        _transition(session, actor, proposal, ProposalState.UNDER_REVIEW, now,
                    {"reviewer": user.username})
    elif proposal.state != ProposalState.UNDER_REVIEW.value:
        raise InvalidTransition(
            f"proposal {proposal.id} is {proposal.state}; reviewers are assigned to "
            "submitted proposals", field="state",
            hint="Ask the PI to submit it first." if proposal.state == "draft" else None)
    else:
        record(session, actor, "proposal.assign_reviewer", "proposal", proposal.id,
               {"reviewer": user.username}, at=now)
    review = Review(proposal_id=proposal.id, reviewer_user_id=user.id, reviewer=user,
                    assigned_at=now)
    session.add(review)
    session.flush()
    return review


def submit_review(
    session: Session, actor: User, proposal: Proposal, *, technical_score: int,
    scientific_score: int, now: datetime, comment: str = "",
) -> Review:
    review = _assigned_review(session, actor, proposal)
    if review is None:
        if actor.is_operator or membership(session, actor, proposal.project) is not None:
            raise PermissionDenied(f"you are not assigned to review proposal {proposal.id}",
                                   field="proposal")
        raise NotFound(f"proposal {proposal.id} not found", field="proposal")
    if proposal.state == ProposalState.WITHDRAWN.value:
        raise InvalidTransition(
            f"proposal {proposal.id} was withdrawn"
            + (f" on {proposal.withdrawn_at:%Y-%m-%d}" if proposal.withdrawn_at else "")
            + "; its review is no longer requested", field="state",
            hint="Nothing to do: the proposal left your assigned reviews.")
    issues = [
        FieldIssue((name,), f"must be an integer {MIN_SCORE}..{MAX_SCORE}, got {value}")
        for name, value in (("technical_score", technical_score),
                            ("scientific_score", scientific_score))
        if not (MIN_SCORE <= value <= MAX_SCORE)
    ]
    if issues:
        raise InvalidInput(f"{issues[0].path}: {issues[0].message}", field=issues[0].path,
                           issues=issues)
    if proposal.state != ProposalState.UNDER_REVIEW.value:
        raise InvalidTransition(f"proposal {proposal.id} is {proposal.state}, not under review",
                                field="state")
    if review.submitted_at is not None:
        raise Conflict(f"you already reviewed proposal {proposal.id}", field="proposal")
    review.technical_score = technical_score
    review.scientific_score = scientific_score
    review.comment = comment
    review.submitted_at = now
    record(session, actor, "proposal.review", "proposal", proposal.id,
           {"reviewer": actor.username, "technical_score": technical_score,
            "scientific_score": scientific_score}, at=now)
    return review


def list_reviews(session: Session, user: User, proposal: Proposal) -> list[Review]:
    """Operators see all reviews; a reviewer sees their own; project members see submitted
    reviews once the proposal is decided (the caller hides reviewer names from them)."""
    stmt = select(Review).where(Review.proposal_id == proposal.id).order_by(Review.id)
    if user.is_operator:
        return list(session.scalars(stmt))
    own = _assigned_review(session, user, proposal)
    if own is not None:
        return [own]
    decided = proposal.state in (ProposalState.ACCEPTED.value, ProposalState.REJECTED.value)
    if decided and membership(session, user, proposal.project) is not None:
        return list(session.scalars(stmt.where(Review.submitted_at.is_not(None))))
    return []


def decide_proposal(session: Session, actor: User, proposal: Proposal, *, decision: str,
                    now: datetime, comment: str = "") -> Proposal:
    require_operator(actor)
    _check_choice(decision, {"accepted", "rejected"}, "decision")
    target = ProposalState(decision)
    if target is ProposalState.ACCEPTED and proposal.state == ProposalState.UNDER_REVIEW.value:
        done = session.scalar(select(func.count()).select_from(Review).where(
            Review.proposal_id == proposal.id, Review.submitted_at.is_not(None)))
        if not done:
            raise Conflict(f"proposal {proposal.id} has no submitted review yet",
                           field="decision", hint="Wait for at least one review.")
    _transition(session, actor, proposal, target, now, {"comment": comment} if comment else {})
    proposal.decided_at = now
    proposal.decision_comment = comment
    return proposal


# --------------------------------------------------------------------------- awards


def add_months(when: datetime, months: int) -> datetime:
    y, m = divmod(when.month - 1 + months, 12)
    year, month = when.year + y, m + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)


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
    if issues:
        raise InvalidInput(f"{issues[0].path}: {issues[0].message}", field=issues[0].path,
                           issues=issues, hint="Periods must not overlap, must lie within "
                           "the award and must add up to its GPU-hours.")


def create_award(
    session: Session, actor: User, *, project: Project, gpu_hours: float, starts_at: datetime,
    now: datetime, gpu_type: str | None = None, proposal: Proposal | None = None,
    periods: Sequence[tuple[datetime, datetime, float]] | None = None,
    period_count: int | None = None, period_months: int = 3,
    expires_at: datetime | None = None, carry_over_limit_gpu_hours: float = 0.0,
) -> Award:
    """Award GPU-hours to a project (operators), split into explicit ``periods`` or into
    ``period_count`` periods of ``period_months`` months (default: one period)."""
    require_operator(actor)
    _positive(gpu_hours, "gpu_hours")
    _positive(carry_over_limit_gpu_hours, "carry_over_limit_gpu_hours", allow_zero=True)
    if proposal is not None:
        if proposal.project_id != project.id:
            raise InvalidInput(f"proposal {proposal.id} belongs to project "
                               f"{proposal.project.slug!r}, not {project.slug!r}",
                               field="proposal")
        if proposal.state != ProposalState.ACCEPTED.value:
            raise InvalidTransition(f"proposal {proposal.id} is {proposal.state}, not accepted",
                                    field="proposal", hint="Decide the proposal first.")
        gpu_type = gpu_type or proposal.gpu_type
    if gpu_type is None:
        raise InvalidInput("gpu_type is required (no proposal to take it from)",
                           field="gpu_type")
    gpu_type = validate_gpu_type(gpu_type)
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
                  carry_over_limit_gpu_hours=float(carry_over_limit_gpu_hours), created_at=now)
    award.periods = [AwardPeriod(starts_at=s, ends_at=e, gpu_hours=h)
                     for s, e, h in sorted(periods)]
    session.add(award)
    session.flush()
    record(session, actor, "award.create", "award", award.id,
           {"project": project.slug, "gpu_type": gpu_type, "gpu_hours": award.gpu_hours,
            "proposal": proposal.id if proposal else None,
            "periods": [[p.starts_at, p.ends_at, p.gpu_hours] for p in award.periods],
            "expires_at": expires,
            "carry_over_limit_gpu_hours": award.carry_over_limit_gpu_hours}, at=now)
    return award


def visible_award(session: Session, user: User, award_id: int) -> Award:
    award = session.get(Award, award_id)
    if award is None or not (user.is_operator
                             or membership(session, user, award.project) is not None):
        raise NotFound(f"award {award_id} not found", field="award")
    return award


def list_awards(
    session: Session, user: User, *, project: str | int | None = None,
    gpu_type: str | None = None, active_at: datetime | None = None,
    limit: int = 50, offset: int = 0,
) -> Page[Award]:
    stmt = select(Award).order_by(Award.id)
    if not user.is_operator:
        stmt = stmt.where(Award.project_id.in_(
            select(ProjectMembership.project_id).where(ProjectMembership.user_id == user.id)))
    if project is not None:
        stmt = stmt.where(Award.project_id == _filter_id(session, user, get_project, project))
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


# --------------------------------------------------------------------------- pay-per-use


def _check_prices(prices: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for gpu_type, price in prices.items():
        name = validate_gpu_type(gpu_type, field=f"prices.{gpu_type}")
        _positive(price, f"prices.{gpu_type}", allow_zero=True)
        out[name] = float(price)
    return out


def create_account(
    session: Session, actor: User, *, project: Project, credit_limit_eur: float,
    prices: Mapping[str, float], now: datetime,
) -> PayPerUseAccount:
    require_operator(actor)
    _positive(credit_limit_eur, "credit_limit_eur", allow_zero=True)
    checked = _check_prices(prices)
    if not checked:
        raise InvalidInput("at least one price per GPU type is required", field="prices",
                           hint='e.g. {"H100": 2.5} (EUR per GPU-hour).')
    existing = session.scalars(
        select(PayPerUseAccount).where(PayPerUseAccount.project_id == project.id)).first()
    if existing is not None:
        raise Conflict(f"project {project.slug!r} already has a pay-per-use account "
                       f"({existing.id})", field="project", hint="Update that account.")
    account = PayPerUseAccount(project_id=project.id, project=project,
                               credit_limit_eur=float(credit_limit_eur), is_active=True,
                               created_at=now)
    account.prices = [PayPerUsePrice(gpu_type=g, eur_per_gpu_hour=p)
                      for g, p in sorted(checked.items())]
    session.add(account)
    session.flush()
    record(session, actor, "account.create", "account", account.id,
           {"project": project.slug, "credit_limit_eur": account.credit_limit_eur,
            "prices": checked}, at=now)
    return account


def update_account(
    session: Session, actor: User, account: PayPerUseAccount, *, now: datetime,
    credit_limit_eur: float | None = None, prices: Mapping[str, float] | None = None,
    is_active: bool | None = None,
) -> PayPerUseAccount:
    require_operator(actor)
    # Validate everything before changing anything.
    if credit_limit_eur is not None:
        _positive(credit_limit_eur, "credit_limit_eur", allow_zero=True)
    checked = _check_prices(prices) if prices is not None else None
    changes: dict[str, Any] = {}
    if credit_limit_eur is not None:
        changes["credit_limit_eur"] = [account.credit_limit_eur, float(credit_limit_eur)]
        account.credit_limit_eur = float(credit_limit_eur)
    if checked is not None:
        old = {p.gpu_type: p.eur_per_gpu_hour for p in account.prices}
        by_type = {p.gpu_type: p for p in account.prices}
        for g, price in checked.items():
            if g in by_type:
                by_type[g].eur_per_gpu_hour = price
            else:
                account.prices.append(PayPerUsePrice(gpu_type=g, eur_per_gpu_hour=price))
        changes["prices"] = [old, {**old, **checked}]
    if is_active is not None:
        changes["is_active"] = [account.is_active, is_active]
        account.is_active = is_active
    session.flush()
    record(session, actor, "account.update", "account", account.id, changes, at=now)
    return account


def visible_account(session: Session, user: User, account_id: int) -> PayPerUseAccount:
    account = session.get(PayPerUseAccount, account_id)
    if account is None or not (user.is_operator
                               or membership(session, user, account.project) is not None):
        raise NotFound(f"pay-per-use account {account_id} not found", field="account")
    return account


def account_for_project(session: Session, project: Project) -> PayPerUseAccount | None:
    return session.scalars(
        select(PayPerUseAccount).where(PayPerUseAccount.project_id == project.id)).first()


def list_accounts(session: Session, user: User, *, project: str | int | None = None,
                  limit: int = 50, offset: int = 0) -> Page[PayPerUseAccount]:
    stmt = select(PayPerUseAccount).order_by(PayPerUseAccount.id)
    if not user.is_operator:
        stmt = stmt.where(PayPerUseAccount.project_id.in_(
            select(ProjectMembership.project_id).where(ProjectMembership.user_id == user.id)))
    if project is not None:
        pid = _filter_id(session, user, get_project, project)
        stmt = stmt.where(PayPerUseAccount.project_id == pid)
    return paginate(session, stmt, limit, offset)


# --------------------------------------------------------------------------- audit


def list_audit(
    session: Session, actor: User, *, entity: str | None = None, entity_id: str | None = None,
    user: str | None = None, action: str | None = None, since: datetime | None = None,
    limit: int = 50, offset: int = 0,
) -> Page[AuditEntry]:
    require_operator(actor)
    stmt = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if entity:
        stmt = stmt.where(AuditEntry.entity == entity)
    if entity_id:
        stmt = stmt.where(AuditEntry.entity_id == entity_id)
    if user:
        stmt = stmt.where(AuditEntry.actor == user)
    if action:
        stmt = stmt.where(AuditEntry.action.startswith(action))
    if since:
        stmt = stmt.where(AuditEntry.at >= ensure_utc(since))
    return paginate(session, stmt, limit, offset)
