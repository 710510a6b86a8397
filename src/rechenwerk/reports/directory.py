"""The operators' directory: every project, user and organisation of the centre, searched,
sorted and paged in the database (never in Python), each row with the figures an operator
looks for (awarded and used GPU-hours, members, projects)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from rechenwerk.access.models import (
    Award,
    AwardPeriod,
    Organization,
    OrgKind,
    Project,
    ProjectMembership,
    User,
)
from rechenwerk.access.security import require_operator
from rechenwerk.access.validation import search_pattern
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.errors import InvalidInput

T = TypeVar("T")

MAX_PAGE_SIZE = 200


@dataclass(frozen=True, slots=True)
class Listing(Generic[T]):
    rows: list[T]
    total: int
    page: int
    pages: int
    sort: str
    descending: bool


@dataclass(frozen=True, slots=True)
class ProjectRow:
    slug: str
    title: str
    organization: str
    pi: str
    members: int
    awarded_gpu_hours: float
    used_gpu_hours: float


@dataclass(frozen=True, slots=True)
class UserRow:
    username: str
    full_name: str
    email: str
    organization: str
    is_operator: bool
    is_reviewer: bool
    is_active: bool
    projects: int


@dataclass(frozen=True, slots=True)
class OrganizationRow:
    name: str
    kind: str
    country: str
    users: int
    projects: int
    awarded_gpu_hours: float
    used_gpu_hours: float


def _like(column: Any, pattern: str) -> ColumnElement[bool]:
    result: ColumnElement[bool] = column.ilike(pattern, escape="\\")
    return result


def _sort_key(sort: str, columns: dict[str, Any]) -> tuple[str, bool]:
    """``name`` or ``-name`` (descending) -> (name, descending), checked against the
    columns this list can be sorted by."""
    descending = sort.startswith("-")
    name = sort.removeprefix("-") or next(iter(columns))
    if name not in columns:
        raise InvalidInput(f"cannot sort by {name!r}", field="sort",
                           hint=f"Sort by one of: {', '.join(columns)} (prefix - for "
                                "descending).")
    return name, descending


def _page(
    db: Session, stmt: Any, count_stmt: Any, *, columns: dict[str, Any],
    tiebreak: Any, sort: str, page: int, size: int,
) -> tuple[list[Any], int, int, int, str, bool]:
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page size {size} is out of range", field="size",
                           hint=f"Use 1 to {MAX_PAGE_SIZE}.")
    if page < 1:
        raise InvalidInput(f"page {page} does not exist; pages start at 1", field="page")
    name, descending = _sort_key(sort, columns)
    column = columns[name]
    total = int(db.scalar(count_stmt) or 0)
    pages = max(1, -(-total // size))
    page = min(page, pages)
    order = column.desc() if descending else column.asc()
    rows = list(db.execute(stmt.order_by(order, tiebreak).limit(size)
                           .offset((page - 1) * size)).all())
    return rows, total, page, pages, name, descending


def _awarded_by_project() -> Any:
    return (select(Award.project_id.label("project_id"),
                   func.sum(AwardPeriod.gpu_hours).label("gpu_hours"))
            .join(AwardPeriod, AwardPeriod.award_id == Award.id)
            .group_by(Award.project_id).subquery())


def _used_by_project() -> Any:
    return (select(UsageRecord.project_id.label("project_id"),
                   func.sum(UsageRecord.gpu_hours).label("gpu_hours"))
            .group_by(UsageRecord.project_id).subquery())


def _members_by_project() -> Any:
    return (select(ProjectMembership.project_id.label("project_id"),
                   func.count().label("n"))
            .group_by(ProjectMembership.project_id).subquery())


def list_projects_directory(
    db: Session, actor: User, *, q: str = "", sort: str = "slug", page: int = 1,
    size: int = 50,
) -> Listing[ProjectRow]:
    """Every project with its organisation, PI, members and awarded/used GPU-hours."""
    require_operator(actor)
    awarded, used, members = _awarded_by_project(), _used_by_project(), _members_by_project()
    pi = select(User.id, User.username).subquery()
    awarded_h = func.coalesce(awarded.c.gpu_hours, 0.0)
    used_h = func.coalesce(used.c.gpu_hours, 0.0)
    n_members = func.coalesce(members.c.n, 0)
    stmt = (select(Project.slug, Project.title, Organization.name, pi.c.username,
                   n_members, awarded_h, used_h)
            .join(Organization, Organization.id == Project.organization_id)
            .join(pi, pi.c.id == Project.pi_user_id)
            .outerjoin(awarded, awarded.c.project_id == Project.id)
            .outerjoin(used, used.c.project_id == Project.id)
            .outerjoin(members, members.c.project_id == Project.id))
    count = (select(func.count()).select_from(Project)
             .join(Organization, Organization.id == Project.organization_id)
             .join(pi, pi.c.id == Project.pi_user_id))
    pattern = search_pattern(q)
    if pattern:
        match = or_(_like(Project.slug, pattern), _like(Project.title, pattern),
                    _like(Organization.name, pattern), _like(pi.c.username, pattern))
        stmt, count = stmt.where(match), count.where(match)
    columns = {"slug": Project.slug, "title": Project.title,
               "organization": Organization.name, "pi": pi.c.username,
               "members": n_members, "awarded": awarded_h, "used": used_h}
    rows, total, page, pages, name, desc = _page(
        db, stmt, count, columns=columns, tiebreak=Project.id, sort=sort, page=page,
        size=size)
    return Listing([ProjectRow(r[0], r[1], r[2], r[3], int(r[4]), float(r[5]), float(r[6]))
                    for r in rows], total, page, pages, name, desc)


def list_users_directory(
    db: Session, actor: User, *, q: str = "", role: str = "", sort: str = "username",
    page: int = 1, size: int = 50,
) -> Listing[UserRow]:
    """Every user with organisation, global roles, state and number of projects."""
    require_operator(actor)
    n_projects = (select(ProjectMembership.user_id.label("user_id"), func.count().label("n"))
                  .group_by(ProjectMembership.user_id).subquery())
    projects = func.coalesce(n_projects.c.n, 0)
    org_name = func.coalesce(Organization.name, "")
    stmt = (select(User.username, User.full_name, User.email, org_name, User.is_operator,
                   User.is_reviewer, User.is_active, projects)
            .outerjoin(Organization, Organization.id == User.organization_id)
            .outerjoin(n_projects, n_projects.c.user_id == User.id))
    count = (select(func.count()).select_from(User)
             .outerjoin(Organization, Organization.id == User.organization_id))
    pattern = search_pattern(q)
    if pattern:
        match = or_(_like(User.username, pattern), _like(User.full_name, pattern),
                    _like(User.email, pattern), _like(Organization.name, pattern))
        stmt, count = stmt.where(match), count.where(match)
    roles = {"operator": User.is_operator.is_(True), "reviewer": User.is_reviewer.is_(True),
             "inactive": User.is_active.is_(False)}
    if role:
        if role not in roles:
            raise InvalidInput(f"unknown role filter {role!r}", field="role",
                               hint=f"Use one of: {', '.join(roles)}.")
        stmt, count = stmt.where(roles[role]), count.where(roles[role])
    columns = {"username": User.username, "name": User.full_name, "email": User.email,
               "organization": org_name, "projects": projects}
    rows, total, page, pages, name, desc = _page(
        db, stmt, count, columns=columns, tiebreak=User.id, sort=sort, page=page, size=size)
    return Listing([UserRow(r[0], r[1], r[2], r[3], bool(r[4]), bool(r[5]), bool(r[6]),
                            int(r[7])) for r in rows], total, page, pages, name, desc)


def list_organizations_directory(
    db: Session, actor: User, *, q: str = "", kind: str = "", sort: str = "name",
    page: int = 1, size: int = 50,
) -> Listing[OrganizationRow]:
    """Every organisation with its users, projects and awarded/used GPU-hours."""
    require_operator(actor)
    awarded, used = _awarded_by_project(), _used_by_project()
    per_org = (select(Project.organization_id.label("org_id"),
                      func.count(Project.id).label("projects"),
                      func.sum(func.coalesce(awarded.c.gpu_hours, 0.0)).label("awarded"),
                      func.sum(func.coalesce(used.c.gpu_hours, 0.0)).label("used"))
               .outerjoin(awarded, awarded.c.project_id == Project.id)
               .outerjoin(used, used.c.project_id == Project.id)
               .group_by(Project.organization_id).subquery())
    users = (select(User.organization_id.label("org_id"), func.count().label("n"))
             .where(User.organization_id.is_not(None))
             .group_by(User.organization_id).subquery())
    n_users = func.coalesce(users.c.n, 0)
    n_projects = func.coalesce(per_org.c.projects, 0)
    awarded_h = func.coalesce(per_org.c.awarded, 0.0)
    used_h = func.coalesce(per_org.c.used, 0.0)
    stmt = (select(Organization.name, Organization.kind, Organization.country, n_users,
                   n_projects, awarded_h, used_h)
            .outerjoin(per_org, per_org.c.org_id == Organization.id)
            .outerjoin(users, users.c.org_id == Organization.id))
    count = select(func.count()).select_from(Organization)
    pattern = search_pattern(q)
    if pattern:
        match = or_(_like(Organization.name, pattern), _like(Organization.country, pattern))
        stmt, count = stmt.where(match), count.where(match)
    if kind:
        kinds = [k.value for k in OrgKind]
        if kind not in kinds:
            raise InvalidInput(f"unknown organisation kind {kind!r}", field="kind",
                               hint=f"Use one of: {', '.join(kinds)}.")
        stmt, count = stmt.where(Organization.kind == kind), count.where(
            Organization.kind == kind)
    columns = {"name": Organization.name, "kind": Organization.kind,
               "country": Organization.country, "users": n_users, "projects": n_projects,
               "awarded": awarded_h, "used": used_h}
    rows, total, page, pages, name, desc = _page(
        db, stmt, count, columns=columns, tiebreak=Organization.id, sort=sort, page=page,
        size=size)
    return Listing([OrganizationRow(r[0], r[1], r[2], int(r[3]), int(r[4]), float(r[5]),
                                    float(r[6])) for r in rows], total, page, pages, name,
                   desc)
