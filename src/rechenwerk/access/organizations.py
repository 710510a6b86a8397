"""Organisations (universities, companies, agencies): created by operators; a project
belongs to its PI's organisation, and a call admits organisations by kind."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.access.audit import record
from rechenwerk.access.models import Organization, OrgKind, User
from rechenwerk.access.paging import Page, paginate
from rechenwerk.access.security import require_operator
from rechenwerk.access.validation import COUNTRY_RE, check_choice, ref_is_id
from rechenwerk.errors import Conflict, InvalidInput, NotFound

ORG_KINDS = frozenset(k.value for k in OrgKind)


def create_organization(
    session: Session, actor: User, *, name: str, kind: str, country: str, now: datetime
) -> Organization:
    require_operator(actor)
    check_choice(kind, ORG_KINDS, "kind")
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
    oid = ref_is_id(ref)
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
        stmt = stmt.where(Organization.kind == check_choice(kind, ORG_KINDS, "kind"))
    if country:
        stmt = stmt.where(Organization.country == country.upper())
    return paginate(session, stmt, limit, offset)
