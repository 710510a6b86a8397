"""The per-request transaction and authentication dependencies."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from factories import T0, bearer, make_token, make_user
from rechenwerk.access.models import Organization
from rechenwerk.api.deps import CurrentUser, DbSession, Now, Operator
from rechenwerk.app import create_app
from rechenwerk.errors import Conflict


def _app(session_factory: sessionmaker[Session]) -> TestClient:
    app = create_app(session_factory=session_factory)
    router = APIRouter()

    @router.post("/t/orgs/{name}")
    def add(name: str, session: DbSession, user: Operator, now: Now) -> dict[str, str]:
        session.add(Organization(name=name, kind="sme", country="DE", created_at=now))
        session.flush()
        if name == "boom":
            raise Conflict("boom after a write")
        return {"by": user.username}

    @router.post("/t/dup/{name}")
    def dup(name: str, session: DbSession, now: Now) -> dict[str, str]:
        # Bypasses the service's uniqueness check, as a concurrent request would.
        session.add(Organization(name=name, kind="sme", country="DE", created_at=now))
        session.flush()
        return {"name": name}

    @router.get("/t/me")
    def me(user: CurrentUser) -> dict[str, str]:
        return {"username": user.username}

    app.include_router(router)
    return TestClient(app)


def test_commit_on_success_rollback_on_error(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s:
        op = make_user(s, username="op", operator=True)
        token = make_token(s, op)
        s.commit()
    client = _app(session_factory)
    assert client.post("/t/orgs/ok", headers=bearer(token)).json() == {"by": "op"}
    r = client.post("/t/orgs/boom", headers=bearer(token))
    assert r.status_code == 409 and r.json()["code"] == "conflict"
    with session_factory() as s:
        names = set(s.scalars(select(Organization.name)))
    assert "ok" in names and "boom" not in names


def test_authentication(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s:
        alice = make_user(s, username="alice")
        token = make_token(s, alice)
        old = make_token(s, alice, expires_at=T0 + timedelta(seconds=1))
        s.commit()
    client = _app(session_factory)
    assert client.get("/t/me").status_code == 401
    assert client.get("/t/me", headers=bearer("rw_wrong")).status_code == 401
    assert client.get("/t/me", headers={"Authorization": "Basic x"}).status_code == 401
    assert client.get("/t/me", headers=bearer(old)).status_code == 401  # expired (wall clock)
    assert client.get("/t/me", headers=bearer(token)).json() == {"username": "alice"}
    r = client.post("/t/orgs/x", headers=bearer(token))
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"


def test_integrity_errors_become_conflicts(session_factory: sessionmaker[Session]) -> None:
    client = _app(session_factory)
    assert client.post("/t/dup/same").status_code == 200
    r = client.post("/t/dup/same")
    assert r.status_code == 409 and r.json()["code"] == "conflict"
    assert "reload and retry" in r.json()["hint"]


def test_route_classes_that_catch_errors_can_roll_back(
    session_factory: sessionmaker[Session],
) -> None:
    from collections.abc import Callable, Coroutine
    from typing import Any

    from fastapi import Request, Response
    from fastapi.routing import APIRoute

    from rechenwerk.api.deps import rollback_request
    from rechenwerk.errors import RechenwerkError

    class HtmlErrors(APIRoute):  # like the portal: errors become pages, not exceptions
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            original = super().get_route_handler()

            async def handler(request: Request) -> Response:
                try:
                    return await original(request)
                except RechenwerkError as exc:
                    rollback_request(request)
                    return Response(exc.message, status_code=exc.http_status)

            return handler

    app = create_app(session_factory=session_factory)
    router = APIRouter(route_class=HtmlErrors)

    @router.post("/page/{name}")
    def page(name: str, session: DbSession, now: Now) -> dict[str, str]:
        session.add(Organization(name=name, kind="sme", country="DE", created_at=now))
        session.flush()
        if name == "half":
            raise Conflict("fails after a write")
        return {"name": name}

    app.include_router(router)
    client = TestClient(app)
    assert client.post("/page/whole").status_code == 200
    assert client.post("/page/half").status_code == 409
    with session_factory() as s:
        names = set(s.scalars(select(Organization.name)))
    assert "whole" in names and "half" not in names
