"""cli/client.py: credentials (file and environment) and problem responses -> errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rechenwerk.cli import client
from rechenwerk.errors import (
    Conflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    RechenwerkError,
    Unauthenticated,
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("RECHENWERK_API_URL", raising=False)
    monkeypatch.delenv("RECHENWERK_TOKEN", raising=False)
    yield tmp_path
    client.use_transport(None)


def _serve(status: int, body: dict[str, object], seen: list[httpx.Request]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body,
                              headers={"content-type": "application/problem+json"})

    client.use_transport(httpx.MockTransport(handler))


def test_credentials_saved_privately_and_env_overrides(home: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = client.save_credentials("http://centre:8000/", "rw_secret")
    assert path == home / "rechenwerk" / "credentials.json"
    assert json.loads(path.read_text()) == {"url": "http://centre:8000", "token": "rw_secret"}
    assert path.stat().st_mode & 0o777 == 0o600
    assert client.load_credentials() == client.Credentials("http://centre:8000", "rw_secret")
    monkeypatch.setenv("RECHENWERK_TOKEN", "rw_env")
    monkeypatch.setenv("RECHENWERK_API_URL", "http://other")
    assert client.load_credentials() == client.Credentials("http://other", "rw_env")


def test_bearer_header_and_params(home: Path) -> None:
    client.save_credentials("http://centre", "rw_abc")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    client.use_transport(httpx.MockTransport(handler))
    assert client.call("GET", "/api/v1/me", params={"a": 1, "b": None}) == {"ok": True}
    assert seen[0].headers["authorization"] == "Bearer rw_abc"
    assert str(seen[0].url) == "http://centre/api/v1/me?a=1"


@pytest.mark.parametrize(("status", "code", "cls"), [
    (422, "invalid_input", InvalidInput), (404, "not_found", NotFound),
    (409, "conflict", Conflict), (409, "invalid_transition", InvalidTransition),
    (401, "unauthenticated", Unauthenticated), (418, "", RechenwerkError),
])
def test_problem_responses_become_errors(home: Path, status: int, code: str,
                                         cls: type[RechenwerkError]) -> None:
    seen: list[httpx.Request] = []
    _serve(status, {"code": code, "detail": "what went wrong", "hint": "fix it",
                    "errors": [{"field": "periods.1.starts_at", "message": "overlaps"}]}, seen)
    with pytest.raises(RechenwerkError) as exc:
        client.call("POST", "/api/v1/awards", json={})
    assert type(exc.value) is cls
    assert exc.value.message == "what went wrong" and exc.value.hint == "fix it"
    assert exc.value.field == "periods.1.starts_at"


def test_several_field_errors_are_kept(home: Path) -> None:
    _serve(422, {"code": "invalid_input", "detail": "2 fields",
                 "errors": [{"field": "a", "message": "x"}, {"field": "b.0", "message": "y"}]},
           [])
    with pytest.raises(InvalidInput) as exc:
        client.call("POST", "/x")
    assert [(i.loc, i.message) for i in exc.value.issues] == [(("a",), "x"), (("b", 0), "y")]
