"""Claims to people and rights (access/oidc/claims.py, service.py) on SQLite and
PostgreSQL, the providers' settings, and password login reserved for operators."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from factories import T0, make_org, make_project, make_user
from rechenwerk.access.models import AuditEntry, ProjectMembership, User
from rechenwerk.access.oidc.claims import MissingClaim, map_claims, username_from
from rechenwerk.access.oidc.models import OidcIdentity, OidcPending
from rechenwerk.access.oidc.service import sign_in
from rechenwerk.access.security import hash_password
from rechenwerk.config import OidcProvider, Settings
from rechenwerk.config_file import masked
from rechenwerk.errors import Conflict, Unauthenticated

NS = r"urn:geant:centre\.example:group:"
PROVIDER = OidcProvider(
    name="aai", display_name="AAI", issuer="https://aai.example/oauth2", client_id="rw",
    client_secret="s3cret", organization_claim="schac_home_organization",
    organizations={"uni.example": "Uni"},
    operator_entitlements=[NS + r"ops#aai\.example"],
    reviewer_entitlements=[NS + r"reviewers#aai\.example"],
    membership_entitlement=(NS + r"projects:(?P<project>[a-z0-9-]+)"
                            r"(:role=(?P<role>[a-z]+))?#aai\.example"),
    membership_roles={"readers": "viewer"})


def ent(group: str) -> str:
    return f"urn:geant:centre.example:group:{group}#aai.example"


def claims(sub: str = "s-1", **extra: Any) -> dict[str, Any]:
    return {"sub": sub, "email": "ada@uni.example", "preferred_username": "Ada Lovelace",
            "name": "Ada", **extra}


# ------------------------------------------------------------------ pure mapping


def test_entitlements_give_roles_and_memberships() -> None:
    g = map_claims(PROVIDER, claims(eduperson_entitlement=[
        ent("projects:p1:role=readers"), ent("projects:p1"),
        ent("projects:p2:role=viewer"), ent("projects:p3:role=pi"),
        ent("projects:p4:role=janitor"), ent("reviewers"),
        ent("ops") + "-not-quite",  # patterns match whole values only
        "urn:geant:other.example:group:p5#aai.example"]))
    assert g.memberships == {"p1": "member", "p2": "viewer", "p3": "member"}
    assert g.ignored == (ent("projects:p4:role=janitor"),)
    assert g.reviewer and not g.operator
    assert g.username == "ada-lovelace" and g.full_name == "Ada"


def test_username_and_organisation_claims() -> None:
    g = map_claims(PROVIDER, {"sub": "x", "email": "Bob.Smith@uni.example",
                              "schac_home_organization": "uni.example"})
    assert g.username == "bob.smith" and g.organization == "Uni"
    scoped = PROVIDER.model_copy(update={"organization_claim": "eduperson_scoped_affiliation"})
    g = map_claims(scoped, claims(eduperson_scoped_affiliation=["staff@other.example",
                                                                 "member@uni.example"]))
    assert (g.organization_value, g.organization) == ("member@uni.example", "Uni")
    g = map_claims(PROVIDER, claims(schac_home_organization="unknown.example"))
    assert (g.organization_value, g.organization) == ("unknown.example", None)
    assert username_from("9lives") == "u-9lives" and username_from("ä") == "user"


def test_missing_email_is_a_missing_claim() -> None:
    with pytest.raises(MissingClaim) as err:
        map_claims(PROVIDER, {"sub": "x", "preferred_username": "x"})
    assert err.value.claim == "email"


# ------------------------------------------------------------------ settings


def test_providers_from_the_toml_file_with_the_secret_masked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "rechenwerk.toml"
    path.write_text('local_login = "operators"\n[[oidc_providers]]\nname = "kc"\n'
                    'display_name = "Centre Keycloak"\n'
                    'issuer = "https://id.centre.example/realms/hpc"\n'
                    'client_id = "rechenwerk"\nclient_secret = "very-secret"\n'
                    'entitlements_claim = "groups"\n'
                    "membership_entitlement = '/rechenwerk/(?P<project>[a-z0-9-]+)'\n")
    monkeypatch.setenv("RECHENWERK_CONFIG", str(path))
    settings = Settings()
    [kc] = settings.oidc_providers
    assert kc.display_name == "Centre Keycloak" and settings.local_login == "operators"
    shown = masked("oidc_providers", settings.oidc_providers)
    assert shown[0]["client_secret"] == "********" and shown[0]["client_id"] == "rechenwerk"


@pytest.mark.parametrize("bad,why", [
    ({"membership_entitlement": "urn:(no-project-group)"}, "needs a group"),
    ({"operator_entitlements": ["(unclosed"]}, "missing"),
    ({"scopes": ["email"]}, "must include 'openid'"),
    ({"name": "Has Spaces"}, "lower-case letters"),
])
def test_bad_provider_settings_are_refused(bad: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        OidcProvider(**{"name": "x", "display_name": "X", "issuer": "https://x",
                        "client_id": "c", **bad})


def test_a_bad_provider_in_the_file_names_its_key(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from rechenwerk.config import get_settings
    from rechenwerk.errors import InvalidInput

    path = tmp_path / "rechenwerk.toml"
    path.write_text('[[oidc_providers]]\nname = "a"\ndisplay_name = "A"\n'
                    'issuer = "https://a.example"\nclient_id = "rw"\n\n'
                    '[[oidc_providers]]\nname = "b"\ndisplay_name = "B"\n'
                    'issuer = "https://b.example"\n')
    monkeypatch.setenv("RECHENWERK_CONFIG", str(path))
    get_settings.cache_clear()
    try:
        with pytest.raises(InvalidInput) as err:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert err.value.message == f"{path}: oidc_providers[1].client_id: Field required"


def test_one_provider_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECHENWERK_CONFIG", raising=False)
    monkeypatch.setenv("RECHENWERK_OIDC_PROVIDERS", '[{"name": "aai", "display_name": '
                       '"AAI", "issuer": "https://aai.example", "client_id": "rw"}]')
    assert [p.name for p in Settings().oidc_providers] == ["aai"]


def test_sign_ins_under_way_are_bounded(session: Session,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from rechenwerk.access.oidc import flows
    from rechenwerk.errors import ServiceUnavailable

    monkeypatch.setattr(flows, "MAX_PENDING", 1)
    session.add(OidcPending(handle_hash="1" * 64, kind="web", provider="aai", nonce="",
                            code_verifier="", device_code="", next_url="/",
                            link_user_id=None, created_at=T0, expires_at=T0 + timedelta(1)))
    session.add(OidcPending(handle_hash="2" * 64, kind="web", provider="aai", nonce="",
                            code_verifier="", device_code="", next_url="/",
                            link_user_id=None, created_at=T0, expires_at=T0))
    session.flush()
    # the ended one is pruned; the one under way fills the bound: refused before any
    # request to the provider (whose address here does not exist)
    with pytest.raises(ServiceUnavailable, match="too many sign-ins"):
        flows.start_web_sign_in(session, PROVIDER, redirect_uri="http://x/cb",
                                next_url="/", link_user=None, now=T0)
    assert len(session.scalars(select(OidcPending)).all()) == 1


def test_provider_names_are_unique() -> None:
    p = {"name": "x", "display_name": "X", "issuer": "https://x", "client_id": "c"}
    with pytest.raises(ValidationError, match="unique"):
        Settings(oidc_providers=[p, p])


# ------------------------------------------------------------------ service


def _memberships(session: Session, user: User) -> dict[str, tuple[str, str | None]]:
    rows = session.scalars(select(ProjectMembership).where(
        ProjectMembership.user_id == user.id)).all()
    slugs = {m.project_id: m for m in rows}
    from rechenwerk.access.models import Project

    return {session.get(Project, pid).slug: (m.role, m.source)  # type: ignore[union-attr]
            for pid, m in slugs.items()}


def test_sign_in_creates_then_follows_the_claims(session: Session) -> None:
    make_org(session, name="Uni")
    p1 = make_project(session, slug="p1")
    make_project(session, slug="p2")
    hand = make_project(session, slug="hand")
    g = map_claims(PROVIDER, claims(schac_home_organization="uni.example",
                                    eduperson_entitlement=[
                                        ent("projects:p1"), ent("projects:p2:role=viewer"),
                                        ent("reviewers"), ent("ops")]))
    first = sign_in(session, PROVIDER, g, now=T0)
    user = first.user
    assert first.created and user.username == "ada-lovelace" and user.password_hash is None
    assert user.organization is not None and user.organization.name == "Uni"
    assert user.is_operator and user.is_reviewer
    assert _memberships(session, user) == {"p1": ("member", "oidc:aai"),
                                           "p2": ("viewer", "oidc:aai")}
    # by hand: a membership, and reviewer rights that the claims also gave
    session.add(ProjectMembership(project_id=hand.id, user_id=user.id, role="member",
                                  created_at=T0))
    session.flush()
    again = sign_in(session, PROVIDER, map_claims(PROVIDER, claims(
        eduperson_entitlement=[ent("projects:p2:role=member")])), now=T0)
    assert again.user.id == user.id and not again.created
    assert not user.is_operator and not user.is_reviewer  # claims gave them, claims took them
    assert _memberships(session, user) == {"p2": ("member", "oidc:aai"),
                                           "hand": ("member", None)}
    actions = [e.action for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    for action in ("user.create", "oidc.link", "membership.add", "membership.role",
                   "membership.remove", "user.update", "login.oidc"):
        assert action in actions, action
    assert p1.id not in {m.project_id for m in session.scalars(select(ProjectMembership).where(
        ProjectMembership.user_id == user.id))}
    assert session.scalar(select(OidcIdentity.subject)) == "s-1"


def test_rights_given_by_hand_stay_when_the_claim_is_absent(session: Session) -> None:
    first = sign_in(session, PROVIDER, map_claims(PROVIDER, claims()), now=T0)
    first.user.is_reviewer = True  # an operator made them reviewer in Rechenwerk
    sign_in(session, PROVIDER, map_claims(PROVIDER, claims()), now=T0)
    assert first.user.is_reviewer


def test_a_local_name_is_not_taken_over_and_linking_needs_the_account(
        session: Session) -> None:
    local = make_user(session, username="ada-lovelace",
                      password_hash=hash_password("local-password"))
    made = sign_in(session, PROVIDER, map_claims(PROVIDER, claims()), now=T0).user
    assert made.id != local.id and made.username == "ada-lovelace-aai"
    # the same identity cannot then be linked to the local account
    with pytest.raises(Conflict, match="already linked to another"):
        sign_in(session, PROVIDER, map_claims(PROVIDER, claims()), now=T0, link_user=local)
    # a new identity, linked by its signed-in owner
    linked = sign_in(session, PROVIDER, map_claims(PROVIDER, claims(sub="s-2")), now=T0,
                     link_user=local)
    assert linked.user.id == local.id and not linked.created


def test_a_deactivated_user_is_refused(session: Session) -> None:
    user = sign_in(session, PROVIDER, map_claims(PROVIDER, claims()), now=T0).user
    user.is_active = False
    with pytest.raises(Unauthenticated, match="deactivated"):
        sign_in(session, PROVIDER, map_claims(PROVIDER, claims()), now=T0)


# ------------------------------------------------------------------ break-glass


def test_password_login_for_operators_only(session_factory: sessionmaker[Session],
                                           session: Session, db_url: str,
                                           tmp_path: Path) -> None:
    from rechenwerk.app import create_app

    make_user(session, username="olga", operator=True, password_hash=hash_password("olga-pw-1"))
    make_user(session, username="pia", password_hash=hash_password("pia-pw-12"))
    session.commit()
    settings = Settings(data_dir=tmp_path / "var", database_url=db_url,
                        local_login="operators", oidc_providers=[PROVIDER])
    with TestClient(create_app(settings, session_factory=session_factory)) as api:
        r = api.post("/api/v1/auth/token", json={"username": "pia", "password": "pia-pw-12"})
        assert r.status_code == 401
        assert r.json()["detail"] == "password login is for operators only here: sign in with AAI"
        r = api.post("/api/v1/auth/token", json={"username": "olga", "password": "olga-pw-1"})
        assert r.status_code == 201, r.text
        page = api.get("/login")
        assert "Sign in with AAI" in page.text
        csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        r = api.post("/login", data={"username": "pia", "password": "pia-pw-12",
                                     "csrf_token": csrf}, follow_redirects=False)
        assert r.status_code == 401 and "Password login is for operators only" in r.text
        assert api.get("/api/v1/auth/oidc/providers").json() == [
            {"name": "aai", "display_name": "AAI", "issuer": "https://aai.example/oauth2"}]


def test_the_documented_provider_configurations_are_valid() -> None:
    """docs/access.md's TOML examples (Keycloak, Helmholtz AAI, MyAccessID) load."""
    import re
    import tomllib

    doc = (Path(__file__).resolve().parents[2] / "docs" / "access.md").read_text()
    section = doc[doc.index("## Federated sign-in"):doc.index("## REST API")]
    blocks = re.findall(r"```toml\n(.*?)```", section, re.S)
    names = [p.name for b in blocks for p in Settings(**tomllib.loads(b)).oidc_providers]
    assert names == ["aai", "keycloak", "helmholtz", "myaccessid"]
