"""Award report pages: the PI submits a status or final report (summary, publications
one per line as "DOI title", the PDF) from the award's page; operators accept or return
submitted reports on ``/report-tasks``. The rules are ``access.report_tasks``'."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, RedirectResponse
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from rechenwerk.access.models import User
from rechenwerk.access.report_tasks import (
    attach_document,
    list_tasks,
    readable_document,
    review_report,
    submit_report,
    visible_task,
)
from rechenwerk.api.deps import get_now, get_session, rollback_request, settings_of
from rechenwerk.errors import InvalidInput, RechenwerkError
from rechenwerk.web.deps import form_data, portal_user
from rechenwerk.web.forms import FormErrors, errors_from, text
from rechenwerk.web.pages.award_changes import award_page_response
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute
from rechenwerk.web.session import flash_redirect, set_flash

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

# The portal's upload: a multipart form with the PDF (body limit in api/bounds.py).
PORTAL_DOCUMENT_PATH = r"^/report-tasks/\d{1,10}/submit$"
REPORT_FIELDS = {"summary", "publications", "document"}


def parse_publications(raw: str) -> list[dict[str, str]]:
    """One publication per line, "DOI title" (the DOI first, then the title)."""
    out = []
    for i, line in enumerate(raw.splitlines()):
        line = line.strip()
        if not line:
            continue
        doi, _, title = line.partition(" ")
        if not title.strip():
            raise InvalidInput(f"publications: line {i + 1} has no title after the DOI",
                               field="publications",
                               hint="Write one per line: 10.1234/abc.5678 The title")
        out.append({"doi": doi, "title": title.strip()})
    return out


@router.post("/report-tasks/{task_id}/submit")
async def report_submit(request: Request, task_id: int,
                        user: User = Depends(portal_user),
                        db: Session = Depends(get_session),
                        now: Any = Depends(get_now)) -> Response:
    task = visible_task(db, user, task_id)
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    upload = form.get("document")
    settings = settings_of(request)
    try:
        if isinstance(upload, UploadFile) and upload.filename:
            data = await upload.read(settings.report_max_bytes + 1)
            attach_document(db, user, task, name=upload.filename, data=data,
                            max_bytes=settings.report_max_bytes, data_dir=settings.data_dir,
                            now=now)
        submit_report(db, user, task, summary=text(fields, "summary"),
                      publications=parse_publications(text(fields, "publications")),
                      now=now)
    except RechenwerkError as exc:
        rollback_request(request)
        errors = errors_from(exc, fields=REPORT_FIELDS, aliases={
            f"publications.{i}.{k}": "publications" for i in range(200) for k in
            ("doi", "title")})
        task = visible_task(db, user, task_id)
        return award_page_response(request, db, user, task.award, now,
                                   report_form=(task.id, fields, errors),
                                   status_code=exc.http_status)
    response = RedirectResponse(f"/awards/{task.award_id}", status_code=303)
    set_flash(response, settings, "success",
              f"{task.kind.capitalize()} report submitted; an operator reviews it.")
    return response


@router.get("/report-tasks/{task_id}/document")
def report_document(request: Request, task_id: int, user: User = Depends(portal_user),
                    db: Session = Depends(get_session)) -> Response:
    task = visible_task(db, user, task_id)
    path = readable_document(db, user, task, settings_of(request).data_dir)
    return FileResponse(path, media_type="application/pdf",
                        filename=task.document_name or "report.pdf")


def _queue(request: Request, db: Session, user: User, state: str,
           forms: dict[int, tuple[dict[str, str], FormErrors]], status_code: int = 200,
           today: Any = None) -> Response:
    tasks = list_tasks(db, user, state=state or None, limit=200).items
    return render(request, "awards/reports.html", {
        "title": "Award reports", "section": "projects", "tasks": tasks, "state": state,
        "forms": forms, "today": today,
    }, status_code=status_code)


@router.get("/report-tasks")
def report_tasks_page(request: Request, state: str = "submitted",
                      user: User = Depends(portal_user), db: Session = Depends(get_session),
                      now: Any = Depends(get_now)) -> Response:
    return _queue(request, db, user, state, {}, today=now.date())


@router.post("/report-tasks/{task_id}/review")
def report_review(request: Request, task_id: int, form: dict[str, str] = Depends(form_data),
                  user: User = Depends(portal_user), db: Session = Depends(get_session),
                  now: Any = Depends(get_now)) -> Response:
    task = visible_task(db, user, task_id)
    try:
        review_report(db, user, task, decision=text(form, "decision"),
                      note=text(form, "note"), now=now)
    except RechenwerkError as exc:
        rollback_request(request)
        errors = errors_from(exc, fields={"decision", "note"})
        return _queue(request, db, user, "submitted", {task_id: (form, errors)},
                      exc.http_status, today=now.date())
    return flash_redirect(
        request, "/report-tasks",
        f"Report {task_id} {'accepted' if task.state == 'accepted' else 'returned'}.")
