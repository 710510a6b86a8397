"""The operators' directory (every project, user and organisation, searched, sorted and
paged by the database: ``reports/directory.py``) and project creation for everyone who
belongs to an organisation (the rule is ``access/projects.py``'s ``create_project``).

Registered before ``projects`` so that ``/projects/new`` is not read as a project slug."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from rechenwerk.access.fields_of_science import FIELDS, label
from rechenwerk.access.models import OrgKind, User
from rechenwerk.access.projects import (
    create_project,
    decide_project,
    get_project,
    list_projects,
)
from rechenwerk.access.validation import SLUG_RE
from rechenwerk.api.deps import get_now, get_session, rollback_request, settings_of
from rechenwerk.errors import RechenwerkError
from rechenwerk.reports.directory import (
    list_organizations_directory,
    list_projects_directory,
    list_users_directory,
)
from rechenwerk.web.deps import form_data, operator_user, portal_user
from rechenwerk.web.forms import FORM_KEY, FormErrors, errors_from, text
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute
from rechenwerk.web.session import flash_redirect

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

PAGE_SIZE = 50
PROJECT_FIELDS = {"slug", "title", "description", "pi", "field_of_science"}
TITLE_MAX = 300
DESCRIPTION_MAX = 5000


@router.get("/ops/projects")
def projects_directory(
    request: Request, q: str = "", sort: str = "slug", page: int = 1,
    user: User = Depends(operator_user), db: Session = Depends(get_session),
) -> Response:
    return _projects_page(request, db, user, q=q, sort=sort, page=page)


def _projects_page(request: Request, db: Session, user: User, *, q: str = "",
                   sort: str = "slug", page: int = 1,
                   forms: dict[str, tuple[dict[str, str], FormErrors]] | None = None,
                   status_code: int = 200) -> Response:
    listing = list_projects_directory(db, user, q=q, sort=sort, page=page, size=PAGE_SIZE)
    pending = list_projects(db, user, approval="pending", limit=200).items
    return render(request, "ops/directory_projects.html", {
        "title": "Projects", "section": "directory", "listing": listing, "q": q,
        "pending": pending, "forms": forms or {},
    }, status_code=status_code)


@router.post("/ops/projects/{slug}/approval")
def project_decide(
    request: Request, slug: str, form: dict[str, str] = Depends(form_data),
    user: User = Depends(operator_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    project = get_project(db, slug)
    try:
        decide_project(db, user, project, decision=text(form, "decision"),
                       note=text(form, "note"), now=now)
    except RechenwerkError as exc:
        rollback_request(request)
        return _projects_page(request, db, user, forms={
            slug: (form, errors_from(exc, fields={"decision", "note"}))},
            status_code=exc.http_status)
    return flash_redirect(request, "/ops/projects",
                          f"Project {slug} {project.approval}.")


@router.get("/ops/users")
def users_directory(
    request: Request, q: str = "", role: str = "", sort: str = "username", page: int = 1,
    user: User = Depends(operator_user), db: Session = Depends(get_session),
) -> Response:
    listing = list_users_directory(db, user, q=q, role=role, sort=sort, page=page,
                                   size=PAGE_SIZE)
    return render(request, "ops/directory_users.html", {
        "title": "Users", "section": "directory", "listing": listing, "q": q, "role": role,
    })


@router.get("/ops/organizations")
def organizations_directory(
    request: Request, q: str = "", kind: str = "", sort: str = "name", page: int = 1,
    user: User = Depends(operator_user), db: Session = Depends(get_session),
) -> Response:
    listing = list_organizations_directory(db, user, q=q, kind=kind, sort=sort, page=page,
                                           size=PAGE_SIZE)
    return render(request, "ops/directory_organizations.html", {
        "title": "Organisations", "section": "directory", "listing": listing, "q": q,
        "kind": kind, "kinds": [k.value for k in OrgKind],
    })


def _new_project_page(request: Request, user: User, *, form: dict[str, str] | None = None,
                      errors: FormErrors | None = None, status_code: int = 200) -> Response:
    return render(request, "projects/new.html", {
        "title": "New project", "section": "dashboard", "form": form or {},
        "errors": errors or FormErrors(),
        "title_max": TITLE_MAX, "description_max": DESCRIPTION_MAX,
        "fields_of_science": [("", "(not given)")] + [
            (code, label(code)) for code in FIELDS],
    }, status_code=status_code)


def _check_project_form(form: dict[str, str], user: User) -> FormErrors:
    """Every mistake of the form at once (the service stops at its first)."""
    errors = FormErrors()
    slug = text(form, "slug")
    if not slug:
        errors.add("slug", "Short name is required: it names the project everywhere, "
                           "also as its Slurm account")
    elif not SLUG_RE.match(slug):
        errors.add("slug", f"{slug!r} is not a valid short name: use 2-63 lower-case "
                           "letters, digits, '-' or '_', starting with a letter")
    title = text(form, "title")
    if not title:
        errors.add("title", "Title is required")
    elif len(title) > TITLE_MAX:
        errors.add("title", f"Title is {len(title)} characters long; at most {TITLE_MAX}")
    if len(form.get("description", "")) > DESCRIPTION_MAX:
        errors.add("description", f"Description is {len(form['description'])} characters "
                                  f"long; at most {DESCRIPTION_MAX}")
    if text(form, "pi") and not user.is_operator:
        # the field is not on a non-operator's form: a form-level error, so it is seen
        errors.add(FORM_KEY, "Only operators create projects for another PI; you lead the "
                             "projects you create")
    return errors


@router.get("/projects/new")
def project_new(request: Request, user: User = Depends(portal_user)) -> Response:
    return _new_project_page(request, user)


@router.post("/projects/new")
def project_create(
    request: Request, form: dict[str, str] = Depends(form_data),
    user: User = Depends(portal_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    errors = _check_project_form(form, user)
    status = 422
    if not errors:
        try:
            project = create_project(
                db, user, slug=text(form, "slug"), title=text(form, "title"), now=now,
                description=form.get("description", "").strip(),
                pi=text(form, "pi") or None,
                field_of_science=text(form, "field_of_science") or None,
                require_approval=settings_of(request).project_approval)
            db.commit()
        except RechenwerkError as exc:
            db.rollback()
            errors = errors_from(exc, {"user": "pi"}, fields=PROJECT_FIELDS)
            status = exc.http_status if FORM_KEY in errors else 422
    if errors:
        return _new_project_page(request, user, form=form, errors=errors, status_code=status)
    return flash_redirect(
        request, f"/projects/{project.slug}",
        f"Project {project.slug} created with {project.pi.username} as PI; it waits "
        "for an operator's approval before it runs jobs or applies for GPU-hours."
        if project.approval == "pending" else
        f"Project {project.slug} created with {project.pi.username} as PI. Next: add "
        "members, then write a proposal for GPU-hours.")
