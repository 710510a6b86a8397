"""A portal page that fails turns the error into an HTML page; what the request wrote
before the error must be rolled back, never committed (one transaction per request)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from factories import T0
from rechenwerk.access.models import Organization
from rechenwerk.api.deps import get_session
from rechenwerk.errors import InvalidInput
from rechenwerk.web.routing import PortalRoute


def test_error_page_rolls_back_earlier_writes(api_client: Any, session: Session) -> None:
    router = APIRouter(route_class=PortalRoute)

    @router.get("/_probe/half-done")
    def half_done(request: Request, db: Session = Depends(get_session)) -> None:
        db.add(Organization(name="Half-done GmbH", kind="sme", country="DE", created_at=T0))
        db.flush()  # the row is written inside the request's transaction ...
        raise InvalidInput("then the request fails", field="name")  # ... and must vanish

    api_client.app.include_router(router)
    response = api_client.get("/_probe/half-done")

    assert response.status_code == 422
    assert "then the request fails" in response.text
    session.rollback()
    count = session.scalar(select(func.count()).select_from(Organization)
                           .where(Organization.name == "Half-done GmbH"))
    assert count == 0
