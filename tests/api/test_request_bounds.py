"""Hostile input never gets a 5xx (docs/security.md, "Limits"): integers past the
database's range (ids past PostgreSQL's 32-bit INTEGER), NUL characters in paths, queries
and bodies, non-finite numbers and booleans in job specs and references, numbers in odd
notations, oversized bodies and scripts, and a lost idempotency race. Every refusal names
the field. On SQLite and PostgreSQL (the ``api_client`` fixture). Several cases were
found by the fuzzer (tests/api/test_fuzz_api.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import literal
from sqlalchemy.orm import Session

from factories import bearer, make_award, make_call, make_project, make_token, make_user
from rechenwerk.access.validation import MAX_ID
from rechenwerk.api.bounds import MAX_BODY_BYTES, MAX_DB_INT
from rechenwerk.jobs.specs import MAX_SCRIPT_BYTES

SPEC = {"name": "train", "command": "python3 train.py", "gpus": 1, "walltime": "1h"}
HUGE = "99999999999999999999"
PAST_ID = str(MAX_ID + 1)  # fits SQLite's INTEGER, not PostgreSQL's


def _world(session: Session) -> dict[str, Any]:
    pi = make_user(session)
    op = make_user(session, operator=True)
    project = make_project(session, pi=pi)
    other = make_project(session, pi=pi)
    make_award(session, project, gpu_hours=100.0)
    make_award(session, other, gpu_hours=100.0)
    out = {"slug": project.slug, "other": other.slug, "pi": bearer(make_token(session, pi)),
           "op": bearer(make_token(session, op))}
    session.commit()
    return out


def _field(r: Any) -> str:
    return str(r.json()["errors"][0]["field"])


@pytest.mark.parametrize("path", [f"/api/v1/jobs/{HUGE}", f"/api/v1/jobs/-{HUGE}",
                                  f"/api/v1/jobs/{2**63}/logs", f"/api/v1/awards/{HUGE}",
                                  f"/api/v1/proposals/{HUGE}/reviews",
                                  # found by the fuzzer: a 500 on PostgreSQL only
                                  f"/api/v1/jobs/{PAST_ID}", f"/api/v1/jobs/-{PAST_ID}0",
                                  f"/api/v1/accounts/{PAST_ID}",
                                  f"/api/v1/proposals/{PAST_ID}/reviews",
                                  f"/api/v1/jobs/{HUGE}.0/logs"])
def test_ids_past_the_database_range_are_404(api_client: TestClient, session: Session,
                                             path: str) -> None:
    w = _world(session)
    r = api_client.get(path, headers=w["op"])
    assert r.status_code == 404, r.text
    assert r.json()["code"] == "not_found" and r.json()["errors"][0]["field"]


def test_cancel_of_an_impossible_id_is_404(api_client: TestClient, session: Session) -> None:
    w = _world(session)
    r = api_client.post(f"/api/v1/jobs/{HUGE}/cancel", headers=w["op"])
    assert r.status_code == 404 and _field(r) == "job_id"


@pytest.mark.parametrize("path", ["/api/v1/jobs", "/api/v1/projects", "/api/v1/audit",
                                  "/api/v1/users"])
def test_offsets_past_the_database_range_are_422_and_the_largest_works(
        api_client: TestClient, session: Session, path: str) -> None:
    w = _world(session)
    r = api_client.get(path, params={"offset": str(2**63)}, headers=w["op"])
    assert r.status_code == 422, r.text
    assert _field(r) == "offset" and str(MAX_DB_INT) in r.json()["hint"]
    r = api_client.get(path, params={"offset": str(MAX_DB_INT)}, headers=w["op"])
    assert r.status_code == 200, r.text
    assert r.json()["items"] == []


@pytest.mark.parametrize("offset", [
    "\u00b2", "\u00b3", "\u0663",  # superscript two and three, Arabic-Indic three
    "99999999999999999999.0",  # pydantic reads "N.0" as N: past 64 bits all the same
])
def test_integer_query_parameters_in_odd_notations_are_422_naming_them(
        api_client: TestClient, session: Session, offset: str) -> None:
    """Found by the fuzzer: "\u00b2".isdigit() is true but int() refuses it (a 500), and
    a huge number written "N.0" passed the range check."""
    w = _world(session)
    for path in ("/api/v1/calls", "/api/v1/jobs"):
        r = api_client.get(path, params={"offset": offset}, headers=w["op"])
        assert r.status_code == 422, r.text
        assert _field(r) == "offset"
    r = api_client.get("/api/v1/jobs", params={"offset": " 1_0 "}, headers=w["op"])
    assert r.status_code == 200, r.text  # what pydantic reads as a number still works


def test_log_offset_at_the_largest_value_is_answered(api_client: TestClient,
                                                     session: Session) -> None:
    w = _world(session)
    job = api_client.post("/api/v1/jobs", json={**SPEC, "project": w["slug"]},
                          headers=w["pi"]).json()
    r = api_client.get(f"/api/v1/jobs/{job['id']}/logs", params={"offset": str(MAX_DB_INT)},
                       headers=w["pi"])
    assert r.status_code == 200, r.text


def _refs_world(session: Session) -> dict[str, Any]:
    w = _world(session)
    w["call"] = make_call(session).slug
    session.commit()
    return w


@pytest.mark.parametrize("value", [int(PAST_ID), -int(PAST_ID) - 1, 10**30, -(10**30),
                                   1e30, 2.5, True, False])
@pytest.mark.parametrize("method, path, field", [
    ("POST", "/api/v1/proposals", "project"),
    ("POST", "/api/v1/proposals", "call"),
    ("POST", "/api/v1/awards", "project"),
    ("POST", "/api/v1/awards", "proposal"),
    ("POST", "/api/v1/accounts", "project"),
    ("POST", "/api/v1/users", "organization"),
])
def test_ids_in_a_body_outside_the_id_range_are_422_naming_the_field(
        api_client: TestClient, session: Session, method: str, path: str, field: str,
        value: Any) -> None:
    """Found by the fuzzer: a project, call, organisation or proposal id past 64 bits
    overflowed SQLite, and one past 32 bits PostgreSQL's INTEGER (500s); ``true`` was
    read as the id 1."""
    w = _refs_world(session)
    bodies: dict[str, dict[str, Any]] = {
        "/api/v1/proposals": {"call": w["call"], "project": w["slug"], "title": "t",
                              "gpu_type": "A100-80GB", "requested_gpu_hours": 10.0},
        "/api/v1/awards": {"project": w["slug"], "gpu_hours": 10.0,
                           "starts_at": "2026-01-01T00:00:00Z"},
        "/api/v1/accounts": {"project": w["slug"], "credit_limit_eur": 10.0,
                             "prices": {"A100-80GB": 2.0}},
        "/api/v1/users": {"username": "fuzzed", "email": "f@example.org"},
    }
    body = {**bodies[path], field: value}
    r = api_client.request(method, path, json=body, headers=w["op"])
    assert r.status_code == 422, r.text
    assert _field(r) == field, r.json()
    for leak in ("Traceback", "out of range", "psycopg", "sqlite", "Overflow"):
        assert leak not in r.text, r.text


@pytest.mark.parametrize("path, body, field", [
    ("/api/v1/accounts", {"credit_limit_eur": True, "prices": {"A100-80GB": 2.0}},
     "credit_limit_eur"),
    ("/api/v1/accounts", {"credit_limit_eur": 10.0, "prices": {"A100-80GB": True}}, "prices"),
    ("/api/v1/calls", {"slug": "c-bool", "title": "t", "access_mode": "research",
                       "closes_at": "2030-01-01T00:00:00Z", "max_gpu_hours": True},
     "max_gpu_hours"),
    ("/api/v1/tokens", {"name": "x", "expires_in_days": True}, "expires_in_days"),
    ("/api/v1/awards", {"gpu_hours": True, "gpu_type": "A100-80GB",
                        "starts_at": "2026-01-01T00:00:00Z"}, "gpu_hours"),
    ("/api/v1/awards", {"gpu_hours": 10.0, "gpu_type": "A100-80GB", "period_months": False,
                        "starts_at": "2026-01-01T00:00:00Z"}, "period_months"),
])
def test_booleans_where_a_body_takes_a_number_are_422_naming_the_field(
        api_client: TestClient, session: Session, path: str, body: dict[str, Any],
        field: str) -> None:
    """pydantic reads true as 1: a price of 1 EUR, a token valid for 1 day."""
    w = _refs_world(session)
    if path in ("/api/v1/accounts", "/api/v1/awards"):
        body = {"project": w["slug"], **body}
    r = api_client.post(path, json=body, headers=w["op"])
    assert r.status_code == 422, r.text
    assert _field(r) == field and "must be a number" in r.json()["detail"], r.json()


def test_a_digit_string_past_the_id_range_is_a_name_that_is_not_found(
        api_client: TestClient, session: Session) -> None:
    w = _refs_world(session)
    r = api_client.get(f"/api/v1/projects/{PAST_ID}", headers=w["op"])
    assert r.status_code == 404, r.text
    r = api_client.post("/api/v1/proposals", headers=w["pi"], json={
        "call": w["call"], "project": PAST_ID, "title": "t", "gpu_type": "A100-80GB",
        "requested_gpu_hours": 10.0})
    assert r.status_code == 404 and _field(r) == "project", r.text


def test_nul_in_path_and_query_is_422_naming_the_parameter(api_client: TestClient,
                                                           session: Session) -> None:
    w = _world(session)
    r = api_client.get("/api/v1/projects/ab%00cd/balance", headers=w["op"])
    assert r.status_code == 422 and _field(r) == "ref", r.text
    r = api_client.get("/api/v1/projects/ab%00cd", headers=w["op"])
    assert r.status_code == 422 and _field(r) == "ref", r.text
    r = api_client.get("/api/v1/jobs", params={"project": "a\x00b"}, headers=w["op"])
    assert r.status_code == 422 and _field(r) == "project", r.text
    r = api_client.get("/api/v1/users", params={"q": "\x00"}, headers=w["op"])
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("change, field", [
    ({"name": "train\x00"}, "name"),
    ({"command": ["python3", "a\x00b"]}, "command.1"),
    ({"env": {"X": "1\x002"}}, "env.X"),
    ({"project": "p\x00"}, "project"),
])
def test_nul_in_a_json_body_is_422_naming_the_field(api_client: TestClient, session: Session,
                                                    change: dict[str, Any], field: str) -> None:
    w = _world(session)
    r = api_client.post("/api/v1/jobs", json={**SPEC, "project": w["slug"], **change},
                        headers=w["pi"])
    assert r.status_code == 422, r.text
    assert _field(r) == field and "NUL" in r.json()["detail"]
    assert api_client.get("/api/v1/jobs", headers=w["pi"]).json()["total"] == 0


def test_nul_in_a_portal_form_is_422(api_client: TestClient, session: Session) -> None:
    _world(session)
    r = api_client.post("/login", data={"username": "a\x00", "password": "x"})
    assert r.status_code == 422 and _field(r) == "username", r.text


def test_a_body_over_the_limit_is_413_naming_it(api_client: TestClient,
                                                session: Session) -> None:
    w = _world(session)
    big = {**SPEC, "project": w["slug"], "script": "#" * (MAX_BODY_BYTES + 10)}
    r = api_client.post("/api/v1/jobs", json=big, headers=w["pi"])
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "payload_too_large" and "1 MiB" in r.json()["detail"]
    assert r.headers["content-type"].startswith("application/problem+json")

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while streaming
        yield b'{"script": "'
        for _ in range(64):
            yield b"#" * 65536
        yield b'"}'

    r = api_client.post("/api/v1/jobs", content=chunks(),
                        headers={**w["pi"], "content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert api_client.get("/api/v1/jobs", headers=w["pi"]).json()["total"] == 0


def test_a_script_over_the_limit_is_422_naming_script(api_client: TestClient,
                                                      session: Session) -> None:
    w = _world(session)
    spec = {k: v for k, v in SPEC.items() if k != "command"}
    r = api_client.post("/api/v1/jobs", json={**spec, "project": w["slug"],
                                              "script": "#" * (MAX_SCRIPT_BYTES + 1)},
                        headers=w["pi"])
    assert r.status_code == 422, r.text
    assert _field(r) == "script" and "256 KiB" in r.json()["detail"]
    r = api_client.post("/api/v1/jobs", json={**spec, "project": w["slug"],
                                              "script": "#" * MAX_SCRIPT_BYTES},
                        headers=w["pi"])
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("raw, field", [
    ('"walltime": Infinity', "walltime"),
    ('"walltime": -Infinity', "walltime"),
    ('"walltime": NaN', "walltime"),
    ('"walltime": 1e999', "walltime"),
    ('"walltime": "99999999999999999999999h"', "walltime"),
    ('"walltime": "1h", "checkpoint_interval": 1e999', "checkpoint_interval"),
    ('"walltime": "1h", "gpus": true', "gpus"),
    ('"walltime": "1h", "gpus": 1, "nodes": true', "nodes"),
    ('"walltime": "1h", "gpus": 99999999999999999999', "gpus"),
])
def test_non_finite_numbers_and_booleans_in_a_spec_are_422(
        api_client: TestClient, session: Session, raw: str, field: str) -> None:
    w = _world(session)
    base = {"name": "x", "project": w["slug"], "command": "true", "gpus": 1}
    text = json.dumps(base)[:-1] + ", " + raw + "}"
    r = api_client.post("/api/v1/jobs", content=text.encode(),
                        headers={**w["pi"], "content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert _field(r) == field


def test_a_lost_idempotency_race_is_a_409_in_user_terms(
        api_client: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers, one key, two projects: both miss the other's job (simulated by a key
    look-up that finds nothing); the unique constraint decides and the loser gets a 409
    that names what conflicted, not the database's constraint."""
    from rechenwerk.jobs import service

    w = _world(session)
    r = api_client.post("/api/v1/jobs", json={**SPEC, "project": w["slug"],
                                              "idempotency_key": "k1"}, headers=w["pi"])
    assert r.status_code == 201, r.text
    monkeypatch.setattr(service, "_balance_and_key_stmt", lambda: service.balance_stmt()
                        .add_columns(literal(None).label("existing_job_id")))
    r = api_client.post("/api/v1/jobs", json={**SPEC, "project": w["other"],
                                              "idempotency_key": "k1"}, headers=w["pi"])
    assert r.status_code == 409, r.text
    detail = r.json()["detail"]
    assert "idempotency key" in detail
    for leak in ("idempotency_key", "UNIQUE", "unique", "constraint", "jobs.", "Key (",
                 "duplicate"):
        assert leak not in detail, detail
    assert api_client.get("/api/v1/jobs", headers=w["pi"]).json()["total"] == 1


HOSTILE = [HUGE, "-" + HUGE, "a\x00b", "9" * 5000, PAST_ID, "\u00b2", HUGE + ".0"]


def _flat(routes: list[Any]) -> list[APIRoute]:
    """Every route (FastAPI keeps an included router as one entry of ``app.routes``)."""
    out: list[APIRoute] = []
    for r in routes:
        inner = getattr(r, "original_router", None)  # FastAPI's _IncludedRouter
        if inner is not None:
            out.extend(_flat(inner.routes))
        elif isinstance(r, APIRoute):
            out.append(r)
    return out


def _routes(app: Any) -> list[tuple[str, str]]:
    out = []
    for route in _flat(app.routes):
        if "{" not in route.path:
            continue
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                out.append((method, route.path))
    return out


def test_every_route_survives_hostile_path_parameters(api_client: TestClient,
                                                      session: Session) -> None:
    w = _world(session)
    routes = _routes(api_client.app)
    assert len(routes) > 20
    failures = []
    for method, path in routes:
        for value in HOSTILE:
            url = re.sub(r"\{[^}]+\}", quote(value, safe=""), path)
            r = api_client.request(method, url, headers=w["op"],
                                   json={} if method not in ("GET", "DELETE") else None)
            if r.status_code >= 500:
                failures.append(f"{method} {path} with {value[:25]!r}: {r.status_code} "
                                f"{r.text[:200]}")
    assert not failures, "\n".join(failures)
