"""Support requests in the portal: the list (filters by state, kind and project; for
operators a summary of counts and response times), a new-request form, and a request's
page with its conversation, the reply form and, for operators, assignment. Closing goes
through a confirmation page. The rules are ``support/service.py``'s."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from rechenwerk.access.models import Project, ProjectMembership, User
from rechenwerk.api.deps import get_now, get_session, settings_of
from rechenwerk.errors import InvalidInput, RechenwerkError
from rechenwerk.support import service as support
from rechenwerk.support.models import KIND_LABELS, SupportRequest
from rechenwerk.support.report import support_report
from rechenwerk.web.deps import form_data, portal_user
from rechenwerk.web.forms import FORM_KEY, FormErrors, errors_from, text
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute
from rechenwerk.web.session import flash_redirect, set_flash

router = APIRouter(route_class=PortalRoute, include_in_schema=False)
PAGE = 50
NEW_FIELDS = {"project", "kind", "subject", "body"}
STATE_LABELS = {
    "open": "open (waiting for an operator)",
    "assigned": "assigned (waiting for the assignee)",
    "answered": "answered (waiting for the requester)",
    "closed": "closed",
}


def _member_projects(db: Session, user: User) -> list[Project]:
    """The projects ``user`` may open requests for (any membership role)."""
    return list(
        db.scalars(
            select(Project)
            .join(ProjectMembership, ProjectMembership.project_id == Project.id)
            .where(ProjectMembership.user_id == user.id)
            .order_by(Project.slug)
        )
    )


def _operators(db: Session) -> list[User]:
    return list(
        db.scalars(
            select(User)
            .where(User.is_operator.is_(True), User.is_active.is_(True))
            .order_by(User.username)
        )
    )


def _page_number(raw: str) -> int:
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) < 7 else 1


@router.get("/support")
def support_list(
    request: Request,
    user: User = Depends(portal_user),
    db: Session = Depends(get_session),
    now: datetime = Depends(get_now),
    state: str = "",
    kind: str = "",
    project: str = "",
    assignee: str = "",
    page: str = "1",
) -> Response:
    number = _page_number(page)
    result = support.list_requests(
        db,
        user,
        state=state or None,
        kind=kind or None,
        project=project or None,
        assignee=assignee or None,
        limit=PAGE,
        offset=(number - 1) * PAGE,
    )
    summary = (
        support_report(db, user, start=now - timedelta(days=30), end=now, by="kind")
        if user.is_operator
        else None
    )
    projects = (
        list(db.scalars(select(Project).order_by(Project.slug)))
        if user.is_operator
        else _member_projects(db, user)
    )
    return render(
        request,
        "support/list.html",
        {
            "title": "Support",
            "section": "support",
            "items": result.items,
            "total": result.total,
            "page": number,
            "pages": max(1, -(-result.total // PAGE)),
            "filters": {"state": state, "kind": kind, "project": project, "assignee": assignee},
            "states": support.STATES,
            "kinds": KIND_LABELS,
            "projects": projects,
            "can_open": bool(_member_projects(db, user)),
            "summary": summary,
        },
    )


def _new_page(
    request: Request,
    db: Session,
    user: User,
    form: dict[str, str],
    errors: FormErrors,
    status_code: int = 200,
) -> Response:
    projects = _member_projects(db, user)
    return render(
        request,
        "support/new.html",
        {
            "title": "New support request",
            "section": "support",
            "form": form,
            "errors": errors,
            "project_options": [
                ("", "Choose a project"),
                *((p.slug, f"{p.slug} — {p.title}") for p in projects),
            ],
            "kind_options": [("", "Choose a kind"), *KIND_LABELS.items()],
            "has_projects": bool(projects),
            "subject_max": support.SUBJECT_MAX,
            "body_max": support.BODY_MAX,
        },
        status_code=status_code,
    )


@router.get("/support/new")
def support_new(
    request: Request,
    user: User = Depends(portal_user),
    db: Session = Depends(get_session),
    project: str = "",
    kind: str = "",
) -> Response:
    return _new_page(request, db, user, {"project": project, "kind": kind}, FormErrors())


@router.post("/support/new")
def support_create(
    request: Request,
    form: dict[str, str] = Depends(form_data),
    user: User = Depends(portal_user),
    db: Session = Depends(get_session),
    now: datetime = Depends(get_now),
) -> Response:
    if not text(form, "project"):
        # Every problem at once: the service's checks of the other fields, too.
        errors = FormErrors()
        errors.add("project", "Project: choose the project you need help with")
        for issue in support.check_request_input(
            text(form, "kind"), form.get("subject", ""), form.get("body", "")
        ):
            errors.add(issue.path, _sentence(issue.path, issue.message))
        return _new_page(request, db, user, form, errors, status_code=422)
    try:
        req = support.open_request(
            db,
            user,
            project=text(form, "project"),
            kind=text(form, "kind"),
            subject=form.get("subject", ""),
            body=form.get("body", ""),
            now=now,
        )
    except RechenwerkError as exc:
        db.rollback()
        return _new_page(request, db, user, form, _field_errors(exc, NEW_FIELDS), status_code=422)
    response = RedirectResponse(f"/support/{req.id}", status_code=303)
    set_flash(
        response,
        settings_of(request),
        "success",
        f"Support request {req.id} opened; the operators have been told.",
    )
    return response


def _sentence(field: str, message: str) -> str:
    labels = {
        "kind": "Kind",
        "subject": "Subject",
        "body": "Message",
        "project": "Project",
        "comment": "Comment",
    }
    return f"{labels.get(field, field)}: {message}"


def _field_errors(exc: RechenwerkError, fields: set[str]) -> FormErrors:
    """One message per field, each saying which field it is about (screen readers read
    the message alone)."""
    if not exc.issues:
        return errors_from(exc, fields=fields)
    errors = FormErrors()
    for issue in exc.issues:
        key = issue.path if issue.path in fields else FORM_KEY
        errors.add(key, _sentence(issue.path, issue.message))
    return errors


def _detail(
    request: Request,
    db: Session,
    user: User,
    req: SupportRequest,
    *,
    form: dict[str, str] | None = None,
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    messages = support.messages_of(db, req)
    return render(
        request,
        "support/detail.html",
        {
            "title": f"Support request {req.id}",
            "section": "support",
            "r": req,
            "messages": messages,
            "kind_label": KIND_LABELS[req.kind],
            "state_label": STATE_LABELS[req.state],
            "form": form or {},
            "errors": errors or FormErrors(),
            "operator_options": [
                (u.username, f"{u.username} — {u.full_name}" if u.full_name else u.username)
                for u in _operators(db)
            ]
            if user.is_operator
            else [],
            "answers": user.is_operator and user.id != req.requester_user_id,
            "body_max": support.BODY_MAX,
        },
        status_code=status_code,
    )


def _visible(db: Session, user: User, request_id: str, *, lock: bool = False) -> SupportRequest:
    if not (request_id.isascii() and request_id.isdigit() and len(request_id) < 10):
        raise support.not_found(request_id)
    return support.visible_request(db, user, int(request_id), lock=lock)


@router.get("/support/{request_id}")
def support_detail(
    request: Request,
    request_id: str,
    user: User = Depends(portal_user),
    db: Session = Depends(get_session),
) -> Response:
    return _detail(request, db, user, _visible(db, user, request_id))


def _back(request: Request, req: SupportRequest, message: str) -> Response:
    return flash_redirect(request, f"/support/{req.id}",
                          message)


@router.post("/support/{request_id}/reply")
def support_reply(
    request: Request,
    request_id: str,
    form: dict[str, str] = Depends(form_data),
    user: User = Depends(portal_user),
    db: Session = Depends(get_session),
    now: datetime = Depends(get_now),
) -> Response:
    req = _visible(db, user, request_id, lock=True)
    try:
        support.reply(db, user, req, body=form.get("body", ""), now=now)
    except InvalidInput as exc:
        db.rollback()
        return _detail(
            request,
            db,
            user,
            _visible(db, user, request_id),
            form=form,
            errors=_field_errors(exc, {"body"}),
            status_code=422,
        )
    return _back(
        request,
        req,
        "Reply sent." if req.state != "answered" else "Answer sent; the requester has been told.",
    )


@router.post("/support/{request_id}/assign")
def support_assign(
    request: Request,
    request_id: str,
    form: dict[str, str] = Depends(form_data),
    user: User = Depends(portal_user),
    db: Session = Depends(get_session),
    now: datetime = Depends(get_now),
) -> Response:
    req = _visible(db, user, request_id, lock=True)
    try:
        support.assign(db, user, req, assignee=text(form, "assignee") or None, now=now)
    except InvalidInput as exc:
        db.rollback()
        return _detail(
            request,
            db,
            user,
            _visible(db, user, request_id),
            form=form,
            errors=errors_from(exc, fields={"assignee"}),
            status_code=422,
        )
    assert req.assignee is not None
    return _back(request, req, f"Assigned to {req.assignee.username}.")


def _close_page(
    request: Request,
    req: SupportRequest,
    form: dict[str, str],
    errors: FormErrors,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "support/close.html",
        {
            "title": f"Close support request {req.id}",
            "section": "support",
            "r": req,
            "form": form,
            "errors": errors,
        },
        status_code=status_code,
    )


@router.get("/support/{request_id}/close")
def support_close_confirm(
    request: Request,
    request_id: str,
    user: User = Depends(portal_user),
    db: Session = Depends(get_session),
) -> Response:
    """The confirmation step before closing (works without JavaScript)."""
    return _close_page(request, _visible(db, user, request_id), {}, FormErrors())


@router.post("/support/{request_id}/close")
def support_close(
    request: Request,
    request_id: str,
    form: dict[str, str] = Depends(form_data),
    user: User = Depends(portal_user),
    db: Session = Depends(get_session),
    now: datetime = Depends(get_now),
) -> Response:
    req = _visible(db, user, request_id, lock=True)
    if form.get("confirm") != "yes":  # never on a stray click or a replayed form
        errors = FormErrors()
        errors.add(
            FORM_KEY,
            f"Support request {req.id} was not closed: confirm it with the button on this page.",
        )
        return _close_page(request, req, form, errors, status_code=422)
    try:
        support.close(db, user, req, comment=form.get("comment", ""), now=now)
    except InvalidInput as exc:
        db.rollback()
        return _close_page(
            request,
            _visible(db, user, request_id),
            form,
            _field_errors(exc, {"comment"}),
            status_code=422,
        )
    return _back(request, req, f"Support request {req.id} closed.")


@router.post("/support/{request_id}/reopen")
def support_reopen(
    request: Request,
    request_id: str,
    user: User = Depends(portal_user),
    db: Session = Depends(get_session),
    now: datetime = Depends(get_now),
) -> Response:
    req = _visible(db, user, request_id, lock=True)
    support.reopen(db, user, req, now=now)
    return _back(request, req, f"Support request {req.id} reopened.")
