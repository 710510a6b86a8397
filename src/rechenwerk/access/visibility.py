"""Which projects a user may see: operators see all projects, everyone else the projects
they are a member of (any role). Every domain (projects, proposals, awards, accounts, jobs,
reports) and every face (API, portal, CLI) asks here instead of writing the rule out.

Two forms of the one rule: :func:`visible_project_ids` for lists (a subquery the caller's
statement filters on, so no id list is loaded) and :func:`can_see_project` for one
project. Callers turn "cannot see" into NotFound, so existence does not leak.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from rechenwerk.access.models import Project, ProjectMembership, User
from rechenwerk.errors import NotFound

S = TypeVar("S", bound=Select[Any])


def visible_project_ids(session: Session, user: User) -> Select[int] | None:
    """The ids of the projects ``user`` may see as a SELECT to use in
    ``.where(X.project_id.in_(...))``; None when ``user`` sees all projects (operators).

    ``session`` is not read today (the rule is one subquery); it is part of the signature
    so that a rule needing a lookup does not change every caller."""
    if user.is_operator:
        return None
    return select(ProjectMembership.project_id).where(ProjectMembership.user_id == user.id)


def only_visible(stmt: S, project_id: Any, session: Session, user: User) -> S:
    """``stmt`` restricted to rows whose ``project_id`` column names a project ``user``
    may see (unchanged for operators)."""
    ids = visible_project_ids(session, user)
    return stmt if ids is None else stmt.where(project_id.in_(ids))


def can_see_project(session: Session, user: User, project_id: int) -> bool:
    """The rule of :func:`visible_project_ids` for one project (a primary-key lookup the
    session may answer from its identity map)."""
    return user.is_operator or session.get(ProjectMembership, (project_id, user.id)) is not None


def filter_id(session: Session, user: User,
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
