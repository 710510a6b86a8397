"""A verified sign-in applied to Rechenwerk: find, link or create the user of an
identity (issuer + sub), then bring organisation, rights and memberships in line with the
claims, all audited, in the caller's one transaction (so a refused sign-in leaves no user
behind).

Never linked by e-mail or username: an identity seen for the first time gets a new user,
unless the sign-in was started by a signed-in user (the proof of that account), whom it
is linked to. :func:`create_federated_user` is the one path that creates such users.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.access.audit import record
from rechenwerk.access.models import Organization, Project, ProjectMembership, User
from rechenwerk.access.oidc.claims import Granted
from rechenwerk.access.oidc.models import OidcIdentity
from rechenwerk.config import OidcProvider
from rechenwerk.errors import Conflict, Unauthenticated

log = logging.getLogger("rechenwerk.oidc")

RIGHTS = ("operator", "reviewer")


def membership_source(provider: OidcProvider) -> str:
    return f"oidc:{provider.name}"


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: User
    identity: OidcIdentity
    created: bool  # a new user was made by this sign-in


def _free_username(session: Session, wanted: str, provider: OidcProvider) -> str:
    """``wanted``, or with the provider's name and a number when it is taken (by a local
    account or another identity: never reused for this one)."""
    candidates = [wanted, f"{wanted}-{provider.name}"[:63],
                  *(f"{wanted[:50]}-{provider.name[:8]}-{n}" for n in range(2, 100))]
    for name in candidates:
        if session.scalars(select(User.id).where(User.username == name)).first() is None:
            return name
    raise Conflict(f"no free username for {wanted!r}", hint="Ask an operator.")


def _organization(session: Session, provider: OidcProvider,
                  granted: Granted) -> Organization | None:
    if granted.organization is None:
        if granted.organization_value is not None:
            log.info("oidc provider=%s: organisation claim %r is not mapped "
                     "(settings organizations)", provider.name, granted.organization_value)
        return None
    org = session.scalars(select(Organization).where(
        Organization.name == granted.organization)).first()
    if org is None:
        log.warning("oidc provider=%s: organisation claim %r maps to %r, which does not "
                    "exist", provider.name, granted.organization_value, granted.organization)
    return org


def create_federated_user(session: Session, provider: OidcProvider, granted: Granted, *,
                          now: datetime) -> User:
    """The one place a sign-in creates a user (a later gate, e.g. an acceptable-use
    policy, belongs here): no password, the organisation the claims map to."""
    org = _organization(session, provider, granted)
    user = User(username=_free_username(session, granted.username, provider),
                email=granted.email, full_name=granted.full_name,
                organization_id=org.id if org else None, organization=org,
                is_operator=False, is_reviewer=False, password_hash=None,
                is_active=True, created_at=now)
    session.add(user)
    session.flush()
    record(session, None, "user.create", "user", user.id,
           {"username": user.username, "organization": org.name if org else None,
            "via": membership_source(provider)}, at=now)
    return user


def sign_in(session: Session, provider: OidcProvider, granted: Granted, *, now: datetime,
            link_user: User | None = None) -> SignedIn:
    """The user of this identity after the claims are applied; ``link_user`` is the
    signed-in user who asked to link it to their account."""
    identity = session.scalars(select(OidcIdentity).where(
        OidcIdentity.issuer == provider.issuer,
        OidcIdentity.subject == granted.subject)).one_or_none()
    created = False
    if identity is not None:
        if link_user is not None and identity.user_id != link_user.id:
            raise Conflict(f"this {provider.display_name} account is already linked to "
                           "another Rechenwerk user", hint="Ask an operator to move it.")
        user = identity.user
    else:
        if link_user is not None:
            user = link_user
        else:
            user = create_federated_user(session, provider, granted, now=now)
            created = True
        identity = OidcIdentity(issuer=provider.issuer, subject=granted.subject,
                                provider=provider.name, user_id=user.id, user=user,
                                granted={}, created_at=now, last_login_at=now)
        session.add(identity)
        session.flush()
        record(session, link_user, "oidc.link", "user", user.id,
               {"provider": provider.name, "issuer": provider.issuer,
                "subject": granted.subject, "new_user": created}, at=now)
    if not user.is_active:
        log.warning("oidc sign-in refused: provider=%s reason=user %s is deactivated",
                    provider.name, user.username)
        raise Unauthenticated("your Rechenwerk account is deactivated",
                              hint="Ask an operator.")
    _apply(session, provider, identity, user, granted, now=now)
    identity.last_login_at = now
    record(session, user, "login.oidc", "user", user.id, {"provider": provider.name},
           at=now)
    return SignedIn(user=user, identity=identity, created=created)


def _apply(session: Session, provider: OidcProvider, identity: OidcIdentity, user: User,
           granted: Granted, *, now: datetime) -> None:
    """Profile, organisation, rights and memberships as this sign-in's claims say."""
    via = membership_source(provider)
    changes: dict[str, list[object]] = {}
    if granted.email != user.email:
        changes["email"] = [user.email, granted.email]
        user.email = granted.email
    if granted.full_name and granted.full_name != user.full_name:
        changes["full_name"] = [user.full_name, granted.full_name]
        user.full_name = granted.full_name
    org = _organization(session, provider, granted)
    if org is not None and org.id != user.organization_id:
        changes["organization"] = [user.organization.name if user.organization else None,
                                   org.name]
        user.organization_id, user.organization = org.id, org
    marks = dict(identity.granted or {})
    for right in RIGHTS:
        attr = f"is_{right}"
        wanted = granted.operator if right == "operator" else granted.reviewer
        if wanted and not getattr(user, attr):
            setattr(user, attr, True)
            marks[right] = True
            changes[attr] = [False, True]
        elif not wanted and marks.get(right):
            # Granted by a claim that is gone; a right given by hand was never marked.
            setattr(user, attr, False)
            marks[right] = False
            changes[attr] = [True, False]
    identity.granted = marks
    if changes:
        record(session, None, "user.update", "user", user.id, {**changes, "via": via},
               at=now)
    _apply_memberships(session, provider, user, granted, now=now)


def _apply_memberships(session: Session, provider: OidcProvider, user: User,
                       granted: Granted, *, now: datetime) -> None:
    via = membership_source(provider)
    for value in granted.ignored:
        log.info("oidc provider=%s: entitlement %r names no role Rechenwerk knows",
                 provider.name, value)
    current = {m.project_id: m for m in session.scalars(
        select(ProjectMembership).where(ProjectMembership.user_id == user.id))}
    projects = {p.slug: p for p in session.scalars(
        select(Project).where(Project.slug.in_(list(granted.memberships))))}
    wanted_ids: set[int] = set()
    for slug, role in sorted(granted.memberships.items()):
        project = projects.get(slug)
        if project is None:
            log.info("oidc provider=%s: entitlement for project %r, which does not exist",
                     provider.name, slug)
            continue
        wanted_ids.add(project.id)
        m = current.get(project.id)
        if m is None:
            session.add(ProjectMembership(project_id=project.id, user_id=user.id,
                                          role=role, created_at=now, source=via))
            record(session, None, "membership.add", "project", project.id,
                   {"user": user.username, "role": role, "via": via}, at=now)
        elif m.source == via and m.role != role:
            record(session, None, "membership.role", "project", project.id,
                   {"user": user.username, "role": [m.role, role], "via": via}, at=now)
            m.role = role
        # A membership made by hand (or by another provider) stays as it is.
    for project_id, m in current.items():
        if m.source == via and project_id not in wanted_ids:
            session.delete(m)
            record(session, None, "membership.remove", "project", project_id,
                   {"user": user.username, "role": m.role, "via": via}, at=now)
    session.flush()
