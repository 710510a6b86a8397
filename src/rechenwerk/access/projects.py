"""Projects, their memberships and roles (pi, member, viewer).

Anyone may create a project with themselves as PI; the PI (or an operator) manages its
members. Members see their projects, operators all (``access.visibility``); everyone
else gets NotFound, so existence does not leak.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.access.audit import record
from rechenwerk.access.fields_of_science import check_field
from rechenwerk.access.models import Project, ProjectMembership, ProjectRole, User
from rechenwerk.access.organizations import get_organization
from rechenwerk.access.paging import Page, paginate
from rechenwerk.access.security import require_operator
from rechenwerk.access.users import get_user
from rechenwerk.access.validation import check_choice, check_slug, ref_is_id
from rechenwerk.access.visibility import can_see_project, filter_id, only_visible
from rechenwerk.errors import Conflict, InvalidInput, NotFound, PermissionDenied

ALL_ROLES = frozenset(r.value for r in ProjectRole)
WORK_ROLES = frozenset({ProjectRole.PI.value, ProjectRole.MEMBER.value})


def _not_found(slug: str) -> NotFound:
    return NotFound(f"project {slug!r} not found", field="project",
                    hint="List your projects with `rechenwerk project list`.")


def get_project(session: Session, ref: str | int) -> Project:
    """A project by slug or id; NotFound otherwise. No authorisation (see visible_project)."""
    pid = ref_is_id(ref)
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
        raise _not_found(project_slug)
    if role not in roles:
        raise PermissionDenied(
            f"your role {role!r} in project {project_slug!r} does not allow this",
            field="project",
            hint="Needs role: " + " or ".join(sorted(roles)) + ". Ask the project's PI.",
        )


def visible_project(session: Session, user: User, ref: str | int) -> Project:
    """The project if ``user`` may see it (any role, or operator); NotFound otherwise."""
    project = get_project(session, ref)
    if not can_see_project(session, user, project.id):
        raise _not_found(project.slug)
    return project


def create_project(
    session: Session, actor: User, *, slug: str, title: str, now: datetime,
    description: str = "", pi: str | int | None = None,
    field_of_science: str | None = None, require_approval: bool = False,
) -> Project:
    """Create a project. Anyone may create one with themselves as PI; operators may name
    another PI. The project belongs to the PI's organisation. ``field_of_science`` is an
    OECD FORD code (``access.fields_of_science``) or None."""
    check_slug(slug)
    field = check_field(field_of_science)
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
    # Where the centre approves projects, a PI's new project waits for an operator;
    # an operator's own are approved at once.
    pending = require_approval and not actor.is_operator
    project = Project(slug=slug, title=title.strip(), description=description,
                      organization_id=pi_user.organization_id, pi_user_id=pi_user.id,
                      created_at=now, field_of_science=field,
                      approval="pending" if pending else "approved", approval_note="",
                      approved_at=None if pending else now,
                      approved_by_user_id=None if pending else actor.id)
    session.add(project)
    session.flush()
    session.add(ProjectMembership(project_id=project.id, user_id=pi_user.id,
                                  role=ProjectRole.PI.value, created_at=now))
    session.flush()
    record(session, actor, "project.create", "project", project.id,
           {"slug": slug, "title": project.title, "pi": pi_user.username,
            "field_of_science": field, "approval": project.approval}, at=now)
    return project


APPROVALS = ("approved", "pending", "rejected")


def decide_project(session: Session, actor: User, project: Project, *, decision: str,
                   note: str, now: datetime) -> Project:
    """An operator approves or rejects a pending project (a rejection needs a note; a
    rejected project may be approved later, e.g. after the PI fixed its description)."""
    require_operator(actor)
    check_choice(decision, {"approved", "rejected"}, "decision")
    if project.approval == decision:
        raise Conflict(f"project {project.slug!r} is already {decision}", field="decision")
    if project.approval == "approved":
        raise Conflict(f"project {project.slug!r} is approved and in use; it is not "
                       "rejected afterwards", field="decision",
                       hint="Remove its members or end its awards instead.")
    note = note.strip()
    if decision == "rejected" and not note:
        raise InvalidInput("note: say why, for the PI", field="note")
    before = project.approval
    project.approval, project.approval_note = decision, note
    project.approved_at, project.approved_by_user_id = now, actor.id
    session.flush()
    record(session, actor, "project.approval", "project", project.id,
           {"approval": [before, decision], "note": note}, at=now)
    return project


class ApprovalView(Protocol):
    """What :func:`require_approved` reads (a Project, or the submit path's row)."""

    @property
    def slug(self) -> str: ...
    @property
    def approval(self) -> str: ...
    @property
    def approval_note(self) -> str: ...


def require_approved(project: ApprovalView, doing: str) -> None:
    """Conflict unless ``project`` is approved (a pending or rejected project neither
    runs jobs nor applies for or receives GPU-hours)."""
    if project.approval != "approved":
        state = "waits for an operator's approval" if project.approval == "pending" else (
            "was not approved" + (f": {project.approval_note}" if project.approval_note
                                  else ""))
        raise Conflict(f"project {project.slug!r} {state}; it cannot {doing} yet",
                       field="project",
                       hint="Operators approve new projects on the portal's Projects page "
                            f"or with `rechenwerk project approve {project.slug}`.")


UNSET: Any = object()  # update_project: "leave this as it is"


def update_project(
    session: Session, actor: User, project: Project, *, now: datetime,
    title: str | None = None, description: str | None = None,
    field_of_science: str | None = UNSET,
) -> Project:
    """Change a project's title, description or field of science (the PI or an operator).
    None leaves title and description as they are; ``field_of_science=None`` or "" clears
    the field, leaving it out keeps it."""
    require_project_role(session, actor, project, {ProjectRole.PI.value})
    changes: dict[str, Any] = {}
    if title is not None:
        if not title.strip():
            raise InvalidInput("title must not be empty", field="title")
        if title.strip() != project.title:
            changes["title"] = [project.title, title.strip()]
            project.title = title.strip()
    if description is not None and description != project.description:
        changes["description"] = True  # the text itself stays out of the audit log
        project.description = description
    if field_of_science is not UNSET:
        field = check_field(field_of_science)
        if field != project.field_of_science:
            changes["field_of_science"] = [project.field_of_science, field]
            project.field_of_science = field
    if changes:
        session.flush()
        record(session, actor, "project.update", "project", project.id, changes, at=now)
    return project


def list_projects(
    session: Session, user: User, *, organization: str | int | None = None,
    member: str | None = None, limit: int = 50, offset: int = 0,
    approval: str | None = None,
) -> Page[Project]:
    stmt = only_visible(select(Project).order_by(Project.slug), Project.id, session, user)
    if approval is not None:
        stmt = stmt.where(Project.approval == check_choice(approval, set(APPROVALS),
                                                           "approval"))
    if organization is not None:
        stmt = stmt.where(Project.organization_id == get_organization(session, organization).id)
    if member is not None:
        stmt = stmt.where(Project.id.in_(
            select(ProjectMembership.project_id).where(
                ProjectMembership.user_id == filter_id(session, user, get_user, member))))
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
    check_choice(role, {ProjectRole.MEMBER.value, ProjectRole.VIEWER.value}, "role")
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
