"""From a provider's claims to what Rechenwerk grants (pure: no database).

The provider's settings say which claim holds the username, e-mail, name and home
organisation, and which entitlement values (AARC-G002 style URNs, e.g.
``urn:geant:centre.example:group:nordlicht-llm:role=member#aai.example``) make someone an
operator, a reviewer or a project member in a role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from rechenwerk.access.models import ProjectRole
from rechenwerk.access.validation import USERNAME_RE
from rechenwerk.config import OidcProvider

# Claims make members and viewers; a project's PI is its own (the applicant, set in
# Rechenwerk), so a "pi" from a claim counts as member.
ROLES = {ProjectRole.MEMBER.value, ProjectRole.VIEWER.value}


class MissingClaim(Exception):
    """A claim the settings require is absent or empty."""

    def __init__(self, claim: str) -> None:
        super().__init__(claim)
        self.claim = claim


@dataclass(frozen=True, slots=True)
class Granted:
    """What one sign-in's claims say about the person."""

    subject: str
    username: str  # the wanted username (made unique only when a user is created)
    email: str
    full_name: str
    organization_value: str | None  # the organisation claim's value, as sent
    organization: str | None  # the Rechenwerk organisation it maps to
    operator: bool
    reviewer: bool
    memberships: dict[str, str] = field(default_factory=dict)  # project slug -> role
    ignored: tuple[str, ...] = ()  # entitlement roles that map to nothing (logged)


def _text(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name) if name else None
    if isinstance(value, list) and value:  # multi-valued attributes sent as lists
        value = value[0]
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def entitlements(claims: dict[str, Any], name: str) -> list[str]:
    value = claims.get(name) if name else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def username_from(value: str) -> str:
    """A valid Rechenwerk username from a claim: lower case, other characters as '-'."""
    name = re.sub(r"[^a-z0-9_.-]+", "-", value.lower()).strip("-.")[:63] or "user"
    if not name[0].isalpha():
        name = ("u-" + name)[:63]
    if len(name) < 2:
        name = (name + "-user")[:63]
    return name if USERNAME_RE.match(name) else "user"


def map_claims(provider: OidcProvider, claims: dict[str, Any]) -> Granted:
    """The grants of ``claims`` under ``provider``'s settings; MissingClaim when the
    e-mail claim is absent."""
    subject = str(claims["sub"])
    email = _text(claims, provider.email_claim)
    if email is None or "@" not in email:
        raise MissingClaim(provider.email_claim)
    wanted = _text(claims, provider.username_claim) or email.split("@", 1)[0]
    org_value, org_name = _organization(provider, claims)
    values = entitlements(claims, provider.entitlements_claim)

    def any_match(patterns: list[str]) -> bool:
        return any(re.fullmatch(p, v) for p in patterns for v in values)

    memberships: dict[str, str] = {}
    ignored: list[str] = []
    if provider.membership_entitlement:
        pattern = re.compile(provider.membership_entitlement)
        for value in values:
            m = pattern.fullmatch(value)
            if m is None:
                continue
            raw_role = (m.groupdict().get("role") or provider.default_membership_role)
            role = provider.membership_roles.get(raw_role, raw_role)
            role = ProjectRole.MEMBER.value if role == ProjectRole.PI.value else role
            if role not in ROLES:
                ignored.append(value)
                continue
            slug = m.group("project")
            # Several entitlements for one project: the strongest role wins.
            if _rank(role) > _rank(memberships.get(slug)):
                memberships[slug] = role
    return Granted(
        subject=subject, username=username_from(wanted), email=email,
        full_name=(_text(claims, provider.name_claim) or "")[:200],
        organization_value=org_value, organization=org_name,
        operator=any_match(provider.operator_entitlements),
        reviewer=any_match(provider.reviewer_entitlements),
        memberships=memberships, ignored=tuple(ignored))


def _organization(provider: OidcProvider,
                  claims: dict[str, Any]) -> tuple[str | None, str | None]:
    """(the claim's value, the organisation it maps to): of several values (e.g.
    eduperson_scoped_affiliation) the first that maps; a scoped value ``member@kit.edu``
    maps by itself or by its scope ``kit.edu``."""
    values = entitlements(claims, provider.organization_claim)
    for value in values:
        for key in (value, value.rpartition("@")[2]):
            if key and key in provider.organizations:
                return value, provider.organizations[key]
    return (values[0] if values else None), None


def _rank(role: str | None) -> int:
    return {"viewer": 1, "member": 2, "pi": 3}.get(role or "", 0)
