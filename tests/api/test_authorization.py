"""Authorisation matrix.

1. EVERY route of the application (iterating ``app.routes``, so routes other domains add
   later are covered too) refuses anonymous requests: API routes with 401, portal pages
   with 401/403 or a redirect to the login page — unless listed in PUBLIC below.
2. For the access endpoints: cross-project and cross-role requests get 403/404, as a
   table of (who, method, path, expected status); a check makes sure every access route
   appears in that table.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from starlette.routing import Mount

from factories import (
    T0,
    bearer,
    make_award,
    make_call,
    make_org,
    make_project,
    make_token,
    make_user,
)
from rechenwerk.access.models import PayPerUseAccount, PayPerUsePrice, Proposal, Review

# (method, path template) reachable without credentials, and why.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/health"): "liveness probe",
    ("GET", "/openapi.json"): "API description",
    ("GET", "/docs"): "Swagger UI",
    ("GET", "/docs/oauth2-redirect"): "Swagger UI",
    ("GET", "/redoc"): "ReDoc",
    ("GET", "/login"): "portal login form",
    ("POST", "/login"): "portal login (checks the password itself)",
    ("POST", "/api/v1/auth/token"): "CLI login: exchanges a password for a token itself",
    # federated sign-in (access/oidc/): before anyone is signed in, by nature
    ("GET", "/api/v1/auth/oidc/providers"): "the sign-in providers, for the CLI",
    ("POST", "/api/v1/auth/oidc/device"): "CLI SSO: starts a device sign-in at the provider",
    ("POST", "/api/v1/auth/oidc/device/poll"): "CLI SSO: a token once the provider signed in",
    ("GET", "/login/oidc/{name}"): "portal: starts the sign-in at the provider",
    ("GET", "/login/oidc/callback"): "portal: the provider's answer, checked itself",
    ("GET", "/static/{path:path}"): "portal CSS/JS",
    # a session's JupyterLab: anyone but its owner, anonymous visitors included, gets 404
    # as for no session at all (no hint it exists; tests/web/test_session_proxy.py)
    **{(m, "/jupyter/{job_id}/{path:path}"): "the session proxy: 404 but for the owner"
       for m in ("GET", "POST", "PUT", "PATCH", "DELETE")},
    ("GET", "/healthz"): "liveness probe (touches nothing)",
    ("GET", "/readyz"): "readiness probe (check results, no user data)",
    ("GET", "/docs-assets/redoc.standalone.js"): "ReDoc's script (served locally)",
    ("GET", "/docs-assets/{path:path}"): "Swagger UI and ReDoc assets",
}
PUBLIC_PREFIXES = ("/static", "/docs-assets")


def _routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route, including those of included routers."""
    out: list[tuple[str, str]] = []
    for route in app.routes:
        # FastAPI >= 0.16x keeps included routers as one entry with effective contexts.
        contexts = (list(route.effective_route_contexts())
                    if hasattr(route, "effective_route_contexts") else [route])
        for ctx in contexts:
            path = getattr(ctx, "path", None)
            methods = getattr(ctx, "methods", None)
            if path is None:
                continue
            if methods:
                out.extend((m, path) for m in sorted(set(methods) - {"HEAD", "OPTIONS"}))
            elif isinstance(ctx, Mount) or hasattr(ctx, "routes"):
                out.append(("GET", path.rstrip("/") + "/{path:path}"))
    return sorted(set(out))


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def _anonymous_refused(method: str, path: str, response: Any) -> bool:
    if path.startswith("/api/"):
        return bool(response.status_code == 401)
    if response.status_code in (401, 403):
        return True
    location = response.headers.get("location", "")
    return 300 <= response.status_code < 400 and "login" in location


def test_every_route_refuses_anonymous_requests(api_client: TestClient) -> None:
    routes = _routes(api_client.app)
    assert ("GET", "/api/v1/projects") in routes
    leaks = []
    for method, path in routes:
        if (method, path) in PUBLIC or path.startswith(PUBLIC_PREFIXES):
            continue
        r = api_client.request(method, _fill(path), json={}, follow_redirects=False)
        if not _anonymous_refused(method, path, r):
            leaks.append(f"{method} {path} -> {r.status_code}")
    assert not leaks, (
        "routes answer anonymous requests; protect them (Depends(current_user)) or list "
        "them in PUBLIC with a reason:\n" + "\n".join(leaks))


def test_bad_tokens_are_refused_everywhere_in_the_api(api_client: TestClient,
                                                      session: Session) -> None:
    user = make_user(session)
    revoked_secret = make_token(session, user)
    from rechenwerk.access.security import list_tokens, revoke_token

    revoke_token(session, user, list_tokens(session, user)[0].id, now=T0)
    session.commit()
    for method, path in _routes(api_client.app):
        if not path.startswith("/api/") or (method, path) in PUBLIC:
            continue
        for headers in (bearer("rw_not-a-token"), bearer(revoked_secret)):
            r = api_client.request(method, _fill(path), json={}, headers=headers)
            assert r.status_code == 401, f"{method} {path} with a bad token -> {r.status_code}"
            assert r.json()["code"] == "unauthenticated"


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    sme = make_org(session, kind="sme", name="SME")
    uni = make_org(session, kind="university", name="Uni")
    users = {
        "operator": make_user(session, username="operator", org=uni, operator=True),
        "pi": make_user(session, username="pi", org=sme),
        "member": make_user(session, username="member", org=sme),
        "viewer": make_user(session, username="viewer", org=sme),
        "outsider": make_user(session, username="outsider", org=uni),
        "reviewer": make_user(session, username="reviewer", org=uni, reviewer=True),
        "reviewer2": make_user(session, username="reviewer2", org=uni, reviewer=True),
    }
    project = make_project(session, pi=users["pi"], slug="alpha",
                           members={users["member"]: "member", users["viewer"]: "viewer"})
    make_project(session, pi=users["outsider"], slug="beta")
    call = make_call(session, slug="inno", access_mode="innovation")
    proposal = Proposal(call_id=call.id, project_id=project.id,
                        applicant_user_id=users["pi"].id, title="p", abstract="",
                        justification="", gpu_type="A100-80GB", requested_gpu_hours=100,
                        state="under_review", decision_comment="", created_at=T0,
                        submitted_at=T0)
    session.add(proposal)
    session.flush()
    session.add(Review(proposal_id=proposal.id, reviewer_user_id=users["reviewer"].id,
                       assigned_at=T0, invited_at=T0))
    award = make_award(session, project)
    account = PayPerUseAccount(project_id=project.id, credit_limit_eur=100.0, is_active=True,
                               created_at=T0)
    account.prices = [PayPerUsePrice(gpu_type="A100-80GB", eur_per_gpu_hour=1.5)]
    session.add(account)
    tokens = {name: make_token(session, u) for name, u in users.items()}
    session.flush()
    from rechenwerk.access.security import list_tokens

    ids = {"proposal": proposal.id, "award": award.id, "account": account.id,
           "pi_token": list_tokens(session, users["pi"])[0].id}
    # Commit and hold no transaction: on SQLite it would block the API's writers.
    session.commit()
    return {"tokens": tokens, **ids}


# who, method, path (with {proposal}/{award}/{account}/{pi_token}), body, expected status
MATRIX: list[tuple[str, str, str, dict[str, Any] | None, int]] = [
    # projects: members only, changes by the PI
    ("outsider", "GET", "/api/v1/projects/alpha", None, 404),
    ("viewer", "GET", "/api/v1/projects/alpha", None, 200),
    ("outsider", "GET", "/api/v1/projects/alpha/members", None, 404),
    ("member", "POST", "/api/v1/projects/alpha/members", {"username": "outsider"}, 403),
    ("viewer", "POST", "/api/v1/projects/alpha/members", {"username": "outsider"}, 403),
    ("outsider", "POST", "/api/v1/projects/alpha/members", {"username": "outsider"}, 404),
    ("member", "DELETE", "/api/v1/projects/alpha/members/viewer", None, 403),
    ("outsider", "DELETE", "/api/v1/projects/alpha/members/viewer", None, 404),
    ("pi", "POST", "/api/v1/projects", {"slug": "gamma", "title": "t", "pi": "member"}, 403),
    ("member", "PATCH", "/api/v1/projects/alpha", {"field_of_science": "1.2"}, 403),
    ("viewer", "PATCH", "/api/v1/projects/alpha", {"title": "mine"}, 403),
    ("outsider", "PATCH", "/api/v1/projects/alpha", {"field_of_science": "1.2"}, 404),
    # project approval: operators only
    ("pi", "POST", "/api/v1/projects/alpha/approval", {"decision": "approved"}, 403),
    ("pi", "PATCH", "/api/v1/projects/alpha", {"field_of_science": "1.2"}, 200),
    # organisations, users: operators create
    ("pi", "POST", "/api/v1/organizations", {"name": "N", "kind": "sme", "country": "DE"},
     403),
    ("pi", "GET", "/api/v1/users", None, 403),
    ("pi", "POST", "/api/v1/users", {"username": "zed", "email": "z@x.eu"}, 403),
    ("pi", "GET", "/api/v1/users/outsider", None, 404),
    ("pi", "GET", "/api/v1/users/pi", None, 200),
    ("pi", "PATCH", "/api/v1/users/pi", {"is_operator": True}, 403),
    ("reviewer", "PATCH", "/api/v1/users/outsider", {"is_reviewer": True}, 403),
    # calls: operators create and close
    ("pi", "POST", "/api/v1/calls",
     {"slug": "c2", "title": "t", "access_mode": "research",
      "closes_at": "2030-01-01T00:00:00Z"}, 403),
    ("reviewer", "POST", "/api/v1/calls/inno/close", None, 403),
    # the ranking: operators only
    ("pi", "GET", "/api/v1/calls/inno/ranking", None, 403),
    ("reviewer", "POST", "/api/v1/calls/inno/ranking/confirm", None, 403),
    # call types: everyone reads the rules, operators create types
    ("pi", "POST", "/api/v1/call-types", {"key": "t2", "title": "t"}, 403),
    ("outsider", "GET", "/api/v1/call-types/innovation", None, 200),
    # proposals: project members and assigned reviewers see them
    ("outsider", "GET", "/api/v1/proposals/{proposal}", None, 404),
    ("reviewer2", "GET", "/api/v1/proposals/{proposal}", None, 404),
    ("reviewer", "GET", "/api/v1/proposals/{proposal}", None, 200),
    ("viewer", "GET", "/api/v1/proposals/{proposal}", None, 200),
    ("member", "POST", "/api/v1/proposals",
     {"call": "inno", "project": "alpha", "title": "t", "gpu_type": "A100-80GB",
      "requested_gpu_hours": 10}, 403),
    ("outsider", "POST", "/api/v1/proposals",
     {"call": "inno", "project": "alpha", "title": "t", "gpu_type": "A100-80GB",
      "requested_gpu_hours": 10}, 404),
    ("member", "PATCH", "/api/v1/proposals/{proposal}", {"title": "mine"}, 403),
    ("viewer", "PATCH", "/api/v1/proposals/{proposal}", {"title": "mine"}, 403),
    ("reviewer", "PATCH", "/api/v1/proposals/{proposal}", {"title": "mine"}, 403),
    ("outsider", "PATCH", "/api/v1/proposals/{proposal}", {"title": "mine"}, 404),
    ("pi", "PATCH", "/api/v1/proposals/{proposal}", {"title": "mine"}, 409),  # not a draft
    ("member", "POST", "/api/v1/proposals/{proposal}/withdraw", None, 403),
    ("reviewer", "POST", "/api/v1/proposals/{proposal}/withdraw", {"reason": "x"}, 403),
    ("outsider", "POST", "/api/v1/proposals/{proposal}/withdraw", None, 404),
    ("member", "POST", "/api/v1/proposals/{proposal}/submit", None, 403),
    ("outsider", "POST", "/api/v1/proposals/{proposal}/submit", None, 404),
    ("pi", "POST", "/api/v1/proposals/{proposal}/reviewers", {"reviewer": "reviewer2"}, 403),
    ("pi", "POST", "/api/v1/proposals/{proposal}/reviews",
     {"technical_score": 5, "scientific_score": 5}, 403),
    ("reviewer2", "POST", "/api/v1/proposals/{proposal}/reviews",
     {"technical_score": 5, "scientific_score": 5}, 404),
    ("outsider", "GET", "/api/v1/proposals/{proposal}/reviews", None, 404),
    # invitations: only the invited reviewer answers
    ("pi", "POST", "/api/v1/proposals/{proposal}/invitation", {"accept": True}, 403),
    ("reviewer2", "POST", "/api/v1/proposals/{proposal}/invitation", {"accept": True}, 404),
    ("outsider", "POST", "/api/v1/proposals/{proposal}/invitation", {"accept": True}, 404),
    # the right to reply: the PI only
    ("member", "POST", "/api/v1/proposals/{proposal}/reply", {"text": "x"}, 403),
    ("reviewer", "POST", "/api/v1/proposals/{proposal}/reply", {"text": "x"}, 403),
    ("outsider", "POST", "/api/v1/proposals/{proposal}/reply", {"text": "x"}, 404),
    # review pipeline: whoever sees the proposal sees its steps; operators assess
    ("outsider", "GET", "/api/v1/proposals/{proposal}/pipeline", None, 404),
    ("viewer", "GET", "/api/v1/proposals/{proposal}/pipeline", None, 200),
    ("reviewer", "GET", "/api/v1/proposals/{proposal}/pipeline", None, 200),
    ("pi", "POST", "/api/v1/proposals/{proposal}/assessments",
     {"step": "eligibility", "outcome": "pass"}, 403),
    ("reviewer", "POST", "/api/v1/proposals/{proposal}/assessments",
     {"step": "eligibility", "outcome": "pass"}, 403),
    ("outsider", "POST", "/api/v1/proposals/{proposal}/assessments",
     {"step": "eligibility", "outcome": "pass"}, 403),
    ("reviewer", "POST", "/api/v1/proposals/{proposal}/decision", {"decision": "accepted"},
     403),
    ("pi", "POST", "/api/v1/proposals/{proposal}/decision", {"decision": "accepted"}, 403),
    # awards and accounts: operators create, members read
    ("pi", "POST", "/api/v1/awards",
     {"project": "alpha", "gpu_type": "A100-80GB", "gpu_hours": 10,
      "starts_at": "2026-01-01T00:00:00Z"}, 403),
    ("outsider", "GET", "/api/v1/awards/{award}", None, 404),
    ("viewer", "GET", "/api/v1/awards/{award}", None, 200),
    ("outsider", "GET", "/api/v1/awards?project=alpha", None, 404),
    ("pi", "POST", "/api/v1/accounts",
     {"project": "beta", "credit_limit_eur": 1, "prices": {"H100": 2}}, 403),
    ("pi", "PATCH", "/api/v1/accounts/{account}", {"credit_limit_eur": 1e9}, 403),
    ("outsider", "GET", "/api/v1/accounts/{account}", None, 404),
    ("member", "GET", "/api/v1/accounts/{account}", None, 200),
    ("outsider", "GET", "/api/v1/accounts?project=alpha", None, 404),
    # audit: operators only; tokens: only one's own
    ("pi", "GET", "/api/v1/audit", None, 403),
    ("reviewer", "GET", "/api/v1/audit", None, 403),
    ("outsider", "DELETE", "/api/v1/tokens/{pi_token}", None, 404),
    ("outsider", "POST", "/api/v1/tokens", {"name": "x", "username": "pi"}, 403),
    # AUP (none published in this world): operators publish, anyone reads and accepts
    ("pi", "POST", "/api/v1/aup", {"text": "Be kind."}, 403),
    ("outsider", "GET", "/api/v1/aup", None, 404),
    ("outsider", "GET", "/api/v1/aup/versions", None, 200),
    ("outsider", "POST", "/api/v1/aup/accept", {"version": 1}, 404),
]

# Access routes any authenticated user may call; they filter by the caller (checked below).
OPEN_TO_USERS = {
    ("GET", "/api/v1/me"), ("GET", "/api/v1/gpu-types"), ("GET", "/api/v1/tokens"),
    ("GET", "/api/v1/organizations"), ("GET", "/api/v1/organizations/{ref}"),
    ("GET", "/api/v1/projects"), ("GET", "/api/v1/calls"), ("GET", "/api/v1/calls/{ref}"),
    ("GET", "/api/v1/call-types"),
    ("GET", "/api/v1/proposals"), ("GET", "/api/v1/awards"), ("GET", "/api/v1/accounts"),
    ("GET", "/api/v1/fields-of-science"),  # the OECD FORD list, the same for everyone
}


@pytest.mark.parametrize(("who", "method", "path", "body", "expected"), MATRIX,
                         ids=[f"{m[0]}-{m[1]}-{m[2]}" for m in MATRIX])
def test_cross_project_and_cross_role_access(
    api_client: TestClient, world: dict[str, Any], who: str, method: str, path: str,
    body: dict[str, Any] | None, expected: int,
) -> None:
    url = path.format(**{k: world[k] for k in ("proposal", "award", "account", "pi_token")})
    r = api_client.request(method, url, json=body, headers=bearer(world["tokens"][who]))
    assert r.status_code == expected, r.text
    if expected >= 400:
        assert r.headers["content-type"] == "application/problem+json"


def test_lists_show_only_what_the_caller_may_see(api_client: TestClient,
                                                 world: dict[str, Any]) -> None:
    def total(who: str, path: str) -> int:
        r = api_client.get(path, headers=bearer(world["tokens"][who]))
        assert r.status_code == 200, r.text
        return int(r.json()["total"])

    assert total("outsider", "/api/v1/projects") == 1  # only beta
    assert total("viewer", "/api/v1/projects") == 1
    assert total("operator", "/api/v1/projects") == 2
    for path in ("/api/v1/proposals", "/api/v1/awards", "/api/v1/accounts"):
        assert total("outsider", path) == 0
        assert total("member", path) == 1
    assert total("reviewer", "/api/v1/proposals") == 1
    assert total("reviewer2", "/api/v1/proposals") == 0
    # filters do not reveal whether an invisible project or user exists
    for path in ("/api/v1/proposals?project=alpha", "/api/v1/proposals?project=nope",
                 "/api/v1/projects?member=pi", "/api/v1/projects?member=nobody"):
        assert total("outsider", path) == 0
    r = api_client.get("/api/v1/proposals?project=nope",
                       headers=bearer(world["tokens"]["operator"]))
    assert r.status_code == 404  # operators see their typos


def test_matrix_covers_every_access_route(api_client: TestClient) -> None:
    from rechenwerk.access.router import router

    urls = [(m, _fill(p.split("?")[0])) for _, m, p, _, _ in MATRIX]
    missing = []
    for route in router.routes:
        assert isinstance(route, APIRoute)
        for method in route.methods:
            if (method, route.path) in OPEN_TO_USERS or (method, route.path) in PUBLIC:
                continue
            if not any(m == method and route.path_regex.match(u) for m, u in urls):
                missing.append(f"{method} {route.path}")
    assert not missing, "access routes without an authorisation case: " + ", ".join(missing)
