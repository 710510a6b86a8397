"""The reservations page (ASGI app, SQLite and PostgreSQL): operators create and delete
with field errors kept in the form; users see only their projects' and maintenance ones."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from factories import make_project, make_user
from portal_login import csrf as _csrf
from portal_login import login as _login
from portal_login import password_hash as _hash
from rechenwerk.clock import FakeClock
from rechenwerk.jobs.models import ReservationRecord


def _post(client: Any, path: str, data: dict[str, str]) -> Any:
    token = _csrf(client.get("/reservations").text)
    return client.post(path, data={**data, "csrf_token": token}, follow_redirects=False)


def test_reservations_page(api_client: Any, session: Session, clock: FakeClock) -> None:
    pi_a = make_user(session, username="pia", password_hash=_hash())
    pi_b = make_user(session, username="pib", password_hash=_hash())
    make_user(session, username="op", operator=True, password_hash=_hash())
    make_project(session, pi=pi_a, slug="alpha")
    make_project(session, pi=pi_b, slug="beta")
    session.commit()
    t = clock.now()

    def when(hours: float) -> str:
        return (t + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M")

    _login(api_client, "op")
    assert "No current reservation" in api_client.get("/reservations").text
    r = _post(api_client, "/reservations", {"name": "alpha-hero", "start": when(1),
                                            "end": when(5), "gpus": "12",
                                            "projects": "alpha"})
    assert r.status_code == 303, r.text
    r = _post(api_client, "/reservations", {"name": "rack-fw", "start": when(6),
                                            "end": when(7), "nodes": "node01",
                                            "maintenance": "on"})
    assert r.status_code == 303, r.text
    # bad input: the form comes back with the message and the typed values
    r = _post(api_client, "/reservations", {"name": "too-big", "start": when(2),
                                            "end": when(3), "gpus": "5", "projects": "beta"})
    assert r.status_code == 422 and "only 4 are not reserved" in r.text
    assert 'value="too-big"' in r.text
    r = _post(api_client, "/reservations", {"name": "x", "start": "soon", "end": when(3),
                                            "gpus": "1", "projects": "beta"})
    assert r.status_code == 422 and "Start must be a date" in r.text
    session.rollback()
    assert session.scalar(select(func.count()).select_from(ReservationRecord)) == 2
    html = api_client.get("/reservations").text
    assert "alpha-hero" in html and "rack-fw" in html and "node01:8, node02:4" in html
    cluster = api_client.get("/ops/cluster").text  # beside the nodes, for operators
    assert 'data-testid="cluster-reservations"' in cluster and "alpha-hero" in cluster

    _login(api_client, "pib")
    html = api_client.get("/reservations").text
    assert "rack-fw" in html and "alpha-hero" not in html and "alpha" not in html
    assert "Reserve GPUs" not in html
    r = _post(api_client, "/reservations/rack-fw/delete", {})
    assert r.status_code == 403
    _login(api_client, "pia")
    assert "alpha-hero" in api_client.get("/reservations").text

    _login(api_client, "op")
    assert _post(api_client, "/reservations/alpha-hero/delete", {}).status_code == 303
    html = api_client.get("/reservations").text
    assert "Reservation &#39;alpha-hero&#39; deleted." in html
    assert "<strong>alpha-hero</strong>" not in html and "<strong>rack-fw</strong>" in html
