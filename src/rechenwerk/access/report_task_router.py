"""REST API of award reports (``/api/v1/report-tasks``): list, submit, review, and the
report's PDF (``PUT`` the raw PDF as the body, ``Content-Type: application/pdf``; the
body limit of this one route is ``report_max_bytes``, see ``api.bounds``)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from rechenwerk.access import paging, report_tasks
from rechenwerk.access import schemas as s
from rechenwerk.access.validation import MAX_ID, MIN_ID
from rechenwerk.api.deps import CurrentUser, DbSession, Now, Operator, settings_of
from rechenwerk.errors import InvalidInput

router = APIRouter(prefix="/api/v1", tags=["access"])

Limit = Query(50, ge=1, le=paging.MAX_LIMIT, description="page size")
Offset = Query(0, ge=0, description="items to skip")
# The path the body limit lets through up to report_max_bytes (api/bounds.py).
DOCUMENT_PATH = r"^/api/v1/report-tasks/\d{1,10}/document$"


@router.get("/report-tasks", response_model=s.PageOut[s.ReportTaskOut],
            summary="Status and final reports of awards I may see (operators: all)")
def list_tasks(session: DbSession, user: CurrentUser, now: Now,
               award: int | None = Query(None, ge=MIN_ID, le=MAX_ID),
               state: str | None = Query(None, description="open, submitted or accepted"),
               overdue: bool = Query(False, description="only open ones past their due "
                                     "date"),
               limit: int = Limit, offset: int = Offset) -> s.PageOut[s.ReportTaskOut]:
    page = report_tasks.list_tasks(session, user, award_id=award, state=state,
                                   overdue_on=now.date() if overdue else None,
                                   limit=limit, offset=offset)
    return s.page_out(page, [s.ReportTaskOut.of(t, now.date()) for t in page.items])


@router.get("/report-tasks/{task_id}", response_model=s.ReportTaskOut)
def show_task(task_id: int, session: DbSession, user: CurrentUser,
              now: Now) -> s.ReportTaskOut:
    return s.ReportTaskOut.of(report_tasks.visible_task(session, user, task_id), now.date())


@router.post("/report-tasks/{task_id}/submit", response_model=s.ReportTaskOut,
             summary="Submit the report: summary and publications (PI)")
def submit_task(task_id: int, body: s.ReportSubmit, session: DbSession, user: CurrentUser,
                now: Now) -> s.ReportTaskOut:
    task = report_tasks.visible_task(session, user, task_id)
    report_tasks.submit_report(session, user, task, summary=body.summary,
                               publications=[p.model_dump() for p in body.publications],
                               now=now)
    return s.ReportTaskOut.of(task, now.date())


@router.post("/report-tasks/{task_id}/review", response_model=s.ReportTaskOut,
             summary="Accept a submitted report or return it with a note (operators)")
def review_task(task_id: int, body: s.ReportReview, session: DbSession, user: Operator,
                now: Now) -> s.ReportTaskOut:
    task = report_tasks.visible_task(session, user, task_id)
    report_tasks.review_report(session, user, task, decision=body.decision, note=body.note,
                               now=now)
    return s.ReportTaskOut.of(task, now.date())


@router.put("/report-tasks/{task_id}/document", response_model=s.ReportTaskOut,
            summary="Upload the report's PDF (the raw file as the body; PI)")
async def put_document(task_id: int, request: Request, session: DbSession,
                       user: CurrentUser, now: Now,
                       name: str = Query("report.pdf", max_length=200,
                                         description="the file's name")) -> s.ReportTaskOut:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/pdf":
        raise InvalidInput("document: send the PDF with Content-Type: application/pdf",
                           field="document")
    data = await request.body()
    settings = settings_of(request)
    task = report_tasks.visible_task(session, user, task_id)
    report_tasks.attach_document(session, user, task, name=name, data=data,
                                 max_bytes=settings.report_max_bytes,
                                 data_dir=settings.data_dir, now=now)
    return s.ReportTaskOut.of(task, now.date())


@router.get("/report-tasks/{task_id}/document", response_class=FileResponse,
            summary="Download the report's PDF (project members, operators)")
def get_document(task_id: int, request: Request, session: DbSession,
                 user: CurrentUser) -> FileResponse:
    task = report_tasks.visible_task(session, user, task_id)
    path = report_tasks.readable_document(session, user, task, settings_of(request).data_dir)
    return FileResponse(path, media_type="application/pdf",
                        filename=task.document_name or "report.pdf")
