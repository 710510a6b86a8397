"""The operators' directory (projects, users, organisations: searched, sorted, paged in
the database) and project creation in the portal, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from factories import T0, make_award, make_org, make_project, make_user
from portal_login import csrf as _csrf
from portal_login import login as _login
from portal_login import password_hash as _hash
from rechenwerk.access.models import AuditEntry, Project, ProjectMembership
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.errors import InvalidInput, PermissionDenied
from rechenwerk.reports.directory import (
    list_organizations_directory,
    list_projects_directory,
    list_users_directory,
)


def _error(html: str, name: str) -> str:
    m = re.search(rf'data-testid="error-{re.escape(name)}">([^<]*)<', html)
    return m.group(1) if m else ""


def _first_column(html: str, testid: str) -> list[str]:
    table = html.split(f'data-testid="{testid}"', 1)[1].split("</table>", 1)[0]
    body = table.split("<tbody>", 1)[1]
    return [re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<tr>\s*<td[^>]*>(.*?)</td>", body, re.S)]


@pytest.fixture
def centre(session: Session) -> dict[str, Any]:
    uni = make_org(session, name="Uni Nord", kind="university", country="SE")
    sme = make_org(session, name="Acme 50% AI", kind="sme", country="DE")
    make_org(session, name="Empty Institute", kind="research_institute", country="FR")
    op = make_user(session, username="op", org=uni, operator=True, password_hash=_hash())
    pia = make_user(session, username="pia", org=uni, password_hash=_hash())
    pib = make_user(session, username="pib", org=sme, password_hash=_hash())
    mem = make_user(session, username="mem", org=uni, reviewer=True, password_hash=_hash())
    alpha = make_project(session, pi=pia, slug="alpha", title="Nordic LLM",
                         members={mem: "member"})
    beta = make_project(session, pi=pib, slug="beta", title="Vision for robots")
    make_project(session, pi=pia, slug="gamma", title="Speech")
    make_award(session, alpha, gpu_hours=1000.0, starts_at=T0 - timedelta(days=1))
    make_award(session, alpha, gpu_hours=500.0, starts_at=T0 + timedelta(days=60))
    make_award(session, beta, gpu_hours=200.0, starts_at=T0 - timedelta(days=1))
    for hours in (10.0, 2.5):
        session.add(UsageRecord(project_id=beta.id, gpus=1, started_at=T0, ended_at=T0,
                                gpu_hours=hours, source="local", created_at=T0))
    session.commit()
    return {"op": op, "pia": pia, "pib": pib, "mem": mem}


def test_project_rows_carry_awards_usage_and_members(session: Session,
                                                      centre: dict[str, Any]) -> None:
    listing = list_projects_directory(session, centre["op"])
    by_slug = {r.slug: r for r in listing.rows}
    assert listing.total == 3 and list(by_slug) == ["alpha", "beta", "gamma"]
    assert by_slug["alpha"].awarded_gpu_hours == pytest.approx(1500.0)  # future award too
    assert by_slug["alpha"].members == 2 and by_slug["alpha"].pi == "pia"
    assert by_slug["beta"].used_gpu_hours == pytest.approx(12.5)
    assert by_slug["beta"].organization == "Acme 50% AI"
    assert by_slug["gamma"].awarded_gpu_hours == 0.0 and by_slug["gamma"].used_gpu_hours == 0


def test_search_sort_and_paging_happen_in_the_database(session: Session,
                                                       centre: dict[str, Any]) -> None:
    op = centre["op"]
    assert [r.slug for r in list_projects_directory(session, op, q="NORDIC").rows] == ["alpha"]
    assert [r.slug for r in list_projects_directory(session, op, q="pib").rows] == ["beta"]
    # the search term's own wildcards mean themselves
    assert [r.slug for r in list_projects_directory(session, op, q="50%").rows] == ["beta"]
    assert list_projects_directory(session, op, q="_").total == 0
    assert [r.slug for r in list_projects_directory(session, op, sort="-awarded").rows] == [
        "alpha", "beta", "gamma"]
    assert [r.slug for r in list_projects_directory(session, op, sort="used").rows][-1] == "beta"
    first = list_projects_directory(session, op, size=2)
    second = list_projects_directory(session, op, size=2, page=2)
    assert (first.pages, second.page) == (2, 2)
    assert [r.slug for r in first.rows + second.rows] == ["alpha", "beta", "gamma"]
    assert list_projects_directory(session, op, size=2, page=99).page == 2  # clamped
    users = list_users_directory(session, op, sort="-projects")
    assert users.rows[0].username == "pia" and users.rows[0].projects == 2
    assert [u.username for u in list_users_directory(session, op, role="reviewer").rows] == [
        "mem"]
    orgs = {o.name: o for o in list_organizations_directory(session, op).rows}
    assert orgs["Uni Nord"].users == 3 and orgs["Uni Nord"].projects == 2
    assert orgs["Uni Nord"].awarded_gpu_hours == pytest.approx(1500.0)
    assert orgs["Empty Institute"].projects == 0 and orgs["Empty Institute"].users == 0
    assert [o.name for o in list_organizations_directory(session, op, kind="sme").rows] == [
        "Acme 50% AI"]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"sort": "password_hash"}, "sort"), ({"page": 0}, "page"), ({"size": 10_000}, "size"),
    ({"q": "x" * 201}, "q"),
])
def test_bad_list_parameters_name_their_field(session: Session, centre: dict[str, Any],
                                              kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        list_projects_directory(session, centre["op"], **kwargs)
    assert exc.value.field == field


def test_only_operators_see_the_directory(session: Session, centre: dict[str, Any]) -> None:
    for lister in (list_projects_directory, list_users_directory,
                   list_organizations_directory):
        with pytest.raises(PermissionDenied):
            lister(session, centre["pia"])


def test_directory_pages_render_sort_and_refuse_non_operators(
        api_client: Any, centre: dict[str, Any]) -> None:
    client = _login(api_client, "op")
    r = client.get("/ops/projects?sort=-used")
    assert r.status_code == 200
    assert _first_column(r.text, "directory-projects")[0] == "beta"
    assert 'aria-sort="descending"' in r.text
    assert "Directory" in r.text  # in the operator's navigation
    r = client.get("/ops/users?q=uni+nord&role=reviewer")
    assert _first_column(r.text, "directory-users") == ["mem"]
    r = client.get("/ops/organizations?kind=research_institute")
    assert _first_column(r.text, "directory-organizations") == ["Empty Institute"]
    r = client.get("/ops/projects?sort=secret")
    assert r.status_code == 422 and "cannot sort by" in r.text
    client = _login(api_client, "pia")
    assert client.get("/ops/projects").status_code == 403
    assert ">Directory<" not in client.get("/").text


def test_pi_creates_a_project_in_the_portal(api_client: Any, session: Session,
                                            centre: dict[str, Any]) -> None:
    client = _login(api_client, "pib")
    page = client.get("/projects/new")
    assert page.status_code == 200 and "Acme 50% AI" in page.text
    r = client.post("/projects/new", data={
        "slug": "robot-arms", "title": "Robot arms", "description": "Grasping policies",
        "csrf_token": _csrf(page.text)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/projects/robot-arms"
    assert "robot-arms" in client.get("/projects/robot-arms").text
    session.expire_all()
    project = session.scalars(select(Project).where(Project.slug == "robot-arms")).one()
    assert project.pi.username == "pib" and project.description == "Grasping policies"
    role = session.scalars(select(ProjectMembership.role).where(
        ProjectMembership.project_id == project.id)).one()
    assert role == "pi"
    assert session.scalars(select(AuditEntry).where(
        AuditEntry.action == "project.create", AuditEntry.entity_id == str(project.id))).first()


def test_project_form_reports_every_mistake_at_once_and_keeps_input(
        api_client: Any, session: Session, centre: dict[str, Any]) -> None:
    client = _login(api_client, "pib")
    page = client.get("/projects/new")
    r = client.post("/projects/new", data={
        "slug": "Bad Slug!", "title": "", "description": "kept text", "pi": "pia",
        "csrf_token": _csrf(page.text)})
    assert r.status_code == 422
    assert "not a valid short name" in _error(r.text, "slug")
    assert _error(r.text, "title") == "Title is required"
    assert "Only operators" in _error(r.text, "_form")
    assert 'value="Bad Slug!"' in r.text and "kept text" in r.text
    assert 'aria-invalid="true"' in r.text
    r = client.post("/projects/new", data={"slug": "alpha", "title": "Clash",
                                           "csrf_token": _csrf(page.text)})
    assert r.status_code == 422 and "already exists" in _error(r.text, "slug")
    session.expire_all()
    assert session.scalars(select(Project).where(Project.title == "Clash")).first() is None


def test_operator_creates_a_project_for_another_pi(api_client: Any, session: Session,
                                                   centre: dict[str, Any]) -> None:
    client = _login(api_client, "op")
    page = client.get("/projects/new")
    r = client.post("/projects/new", data={"slug": "nobody-pi", "title": "T", "pi": "ghost",
                                           "csrf_token": _csrf(page.text)})
    assert r.status_code == 422 and "ghost" in _error(r.text, "pi")
    r = client.post("/projects/new", data={"slug": "for-pia", "title": "T", "pi": "pia",
                                           "csrf_token": _csrf(page.text)},
                    follow_redirects=False)
    assert r.status_code == 303
    session.expire_all()
    project = session.scalars(select(Project).where(Project.slug == "for-pia")).one()
    assert project.pi.username == "pia" and project.organization.name == "Uni Nord"


def test_new_project_form_takes_a_field_of_science(api_client: Any, session: Session,
                                                   centre: dict[str, Any]) -> None:
    client = _login(api_client, "pib")
    page = client.get("/projects/new")
    assert '<option value="1.2" >1.2 Computer and information sciences</option>' in page.text
    r = client.post("/projects/new", data={"slug": "tagged", "title": "Tagged",
                                           "field_of_science": "1.2",
                                           "csrf_token": _csrf(page.text)},
                    follow_redirects=False)
    assert r.status_code == 303
    assert "field of science 1.2 Computer and information sciences" in client.get(
        "/projects/tagged").text
    r = client.post("/projects/new", data={"slug": "forged", "title": "Forged",
                                           "field_of_science": "9.9",
                                           "csrf_token": _csrf(page.text)})
    assert r.status_code == 422
    assert "not a field of the OECD FORD list" in _error(r.text, "field_of_science")
    session.expire_all()
    assert session.scalars(select(Project.field_of_science).where(
        Project.slug == "tagged")).one() == "1.2"
    assert session.scalars(select(Project).where(Project.slug == "forged")).first() is None
