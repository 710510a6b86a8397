"""A project's field of science (OECD FORD codes): the list, create and edit through the
service, the REST API and `rechenwerk project`, refusals naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from factories import T0, bearer, make_org, make_project, make_token, make_user
from rechenwerk.access import fields_of_science as fos
from rechenwerk.access.models import AuditEntry, Project
from rechenwerk.access.projects import UNSET, create_project, update_project
from rechenwerk.cli.main import app as cli
from rechenwerk.errors import InvalidInput, NotFound, PermissionDenied


def test_the_list_has_six_major_fields_and_their_second_level() -> None:
    majors = [c for c in fos.FIELDS if "." not in c]
    assert majors == ["1", "2", "3", "4", "5", "6"]
    assert fos.FIELDS["1.2"] == "Computer and information sciences"
    assert fos.FIELDS["6"] == "Humanities and the arts"
    # second-level codes per major field, as in the Frascati Manual 2015 Table 2.2
    counts = {m: sum(1 for c in fos.FIELDS if "." in c and fos.major_of(c) == m)
              for m in majors}
    assert counts == {"1": 7, "2": 11, "3": 5, "4": 5, "5": 9, "6": 5}
    assert fos.label("2.10") == "2.10 Nano-technology"
    assert fos.check_field(" 1.2 ") == "1.2" and fos.check_field("") is None
    with pytest.raises(InvalidInput) as exc:
        fos.check_field("1.9")
    assert exc.value.field == "field_of_science"
    assert "rechenwerk project fields" in (exc.value.hint or "")


def test_create_and_update_through_the_service(session: Session) -> None:
    org = make_org(session)
    pi = make_user(session, org=org)
    other = make_user(session, org=org)
    op = make_user(session, org=org, operator=True)
    p = create_project(session, pi, slug="climate", title="Climate", now=T0,
                       field_of_science="1.5")
    assert p.field_of_science == "1.5"
    update_project(session, pi, p, now=T0, field_of_science="1.2")
    assert p.field_of_science == "1.2"
    update_project(session, op, p, now=T0, title="Climate emulators")  # field kept
    assert (p.title, p.field_of_science) == ("Climate emulators", "1.2")
    update_project(session, op, p, now=T0, field_of_science=None)
    assert p.field_of_science is None
    with pytest.raises(NotFound):  # not a member: existence does not leak
        update_project(session, other, p, now=T0, field_of_science="1")
    make_project(session, pi=pi, slug="second", members={other: "member"})
    second = session.scalars(select(Project).where(Project.slug == "second")).one()
    with pytest.raises(PermissionDenied):  # a member, not the PI
        update_project(session, other, second, now=T0, field_of_science="1")
    with pytest.raises(InvalidInput):
        create_project(session, pi, slug="bad", title="Bad", now=T0, field_of_science="7")
    changes = [e.changes for e in session.scalars(
        select(AuditEntry).where(AuditEntry.action == "project.update"))]
    assert {"field_of_science": ["1.5", "1.2"]} in changes
    assert {"field_of_science": ["1.2", None]} in changes
    assert update_project(session, pi, p, now=T0, field_of_science=UNSET) is p


def test_api_create_edit_list(session: Session, api_client: Any) -> None:
    org = make_org(session)
    pi = make_user(session, username="greta", org=org)
    stranger = make_user(session, username="stranger", org=org)
    tok, tok_s = make_token(session, pi), make_token(session, stranger)
    session.commit()
    r = api_client.post("/api/v1/projects", json={"slug": "llm", "title": "LLM",
                                                   "field_of_science": "1.2"},
                        headers=bearer(tok))
    assert r.status_code == 201, r.text
    assert r.json()["field_of_science"] == "1.2"
    assert r.json()["field_of_science_label"] == "1.2 Computer and information sciences"
    r = api_client.post("/api/v1/projects", json={"slug": "bad", "title": "Bad",
                                                   "field_of_science": "computers"},
                        headers=bearer(tok))
    assert r.status_code == 422
    err = r.json()["errors"][0]
    assert err["field"] == "field_of_science" and "fields-of-science" in r.json()["hint"]
    r = api_client.patch("/api/v1/projects/llm", json={"title": "LLM 2"}, headers=bearer(tok))
    assert (r.json()["title"], r.json()["field_of_science"]) == ("LLM 2", "1.2")
    r = api_client.patch("/api/v1/projects/llm", json={"field_of_science": None},
                         headers=bearer(tok))
    assert r.status_code == 200 and r.json()["field_of_science"] is None
    r = api_client.patch("/api/v1/projects/llm", json={"field_of_science": "2"},
                         headers=bearer(tok_s))
    assert r.status_code == 404
    codes = api_client.get("/api/v1/fields-of-science", headers=bearer(tok)).json()
    assert len(codes) == len(fos.FIELDS)
    assert codes[1] == {"code": "1.1", "name": "Mathematics", "major": "1"}


@pytest.fixture
def cli_env(session: Session, api_client: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from rechenwerk.cli import client

    pi = make_user(session, username="greta", org=make_org(session))
    token = make_token(session, pi)
    session.commit()
    client.use_transport(api_client._transport)
    monkeypatch.setenv("RECHENWERK_API_URL", "http://testserver")
    monkeypatch.setenv("RECHENWERK_TOKEN", token)
    yield CliRunner()
    client.use_transport(None)


def test_cli_create_edit_fields(cli_env: CliRunner) -> None:
    r = cli_env.invoke(cli, ["project", "create", "llm", "--title", "LLM", "--field", "1.2",
                             "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["field_of_science"] == "1.2"
    r = cli_env.invoke(cli, ["project", "create", "bad", "--title", "Bad", "--field", "9.9"])
    assert r.exit_code != 0 and "field_of_science" in r.output
    assert "rechenwerk project fields" in r.output and "Traceback" not in r.output
    r = cli_env.invoke(cli, ["project", "edit", "llm", "--field", "6.2"])
    assert r.exit_code == 0, r.output
    assert "6.2 Languages and literature" in r.output
    r = cli_env.invoke(cli, ["project", "edit", "llm", "--clear-field", "--json"])
    assert json.loads(r.output)["field_of_science"] is None
    r = cli_env.invoke(cli, ["project", "edit", "llm"])
    assert r.exit_code == 2 and "nothing to change" in r.output
    r = cli_env.invoke(cli, ["project", "fields"])
    assert r.exit_code == 0 and "Computer and information sciences" in r.output
