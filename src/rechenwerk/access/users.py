"""Users: accounts of people (operators, reviewers, project members) and their
passwords. Operators create and change users; the bootstrap path (``actor`` None) is
``rechenwerk admin`` on the server machine."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.access.audit import record
from rechenwerk.access.models import User
from rechenwerk.access.organizations import get_organization
from rechenwerk.access.paging import Page, paginate
from rechenwerk.access.portal_sessions import end_user_sessions
from rechenwerk.access.security import hash_password, require_operator
from rechenwerk.access.validation import USERNAME_RE, ref_is_id
from rechenwerk.errors import Conflict, InvalidInput, NotFound


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
    uid = ref_is_id(ref)
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
    if is_active is False:
        end_user_sessions(session, user.id, now=now)
    if changes:
        session.flush()
        record(session, actor, "user.update", "user", user.id, changes, at=now)
    return user


def set_password(session: Session, actor: User | None, user: User, password: str,
                 *, now: datetime) -> None:
    """Set or reset ``user``'s portal password; ends all of their portal sessions."""
    if actor is not None and actor.id != user.id:
        require_operator(actor)
    user.password_hash = hash_password(password)
    end_user_sessions(session, user.id, now=now)
    record(session, actor, "user.set_password", "user", user.id, {}, at=now)
