"""Award reports: the status report due at the end of each award period but the last,
and the final report due some months after the award ends (results, use of the machine,
publications with DOI and title, and a PDF document). The PI submits, an operator accepts
or returns it with a note; reminders go out before the due date
(``notifications.service``); a centre may refuse new proposals of a project while one of
its final reports is overdue (``block_proposals_on_overdue_report``).

Tasks follow the award: created with it and moved when an approved change moves its
periods or end (``sync_report_tasks``).
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.access.audit import record
from rechenwerk.access.models import Award, ProjectRole, ReportTask, User
from rechenwerk.access.months import add_months
from rechenwerk.access.paging import Page, paginate
from rechenwerk.access.projects import require_project_role
from rechenwerk.access.security import require_operator
from rechenwerk.access.validation import check_choice
from rechenwerk.access.visibility import can_see_project, only_visible
from rechenwerk.errors import (
    Conflict,
    FieldIssue,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    raise_issues,
)

STATES = ("open", "submitted", "accepted")
DOI_RE = re.compile(r"^10\.\d{4,9}/\S{1,200}$")
MAX_SUMMARY = 20_000
MAX_PUBLICATIONS = 200
PDF_MAGIC = b"%PDF-"


def sync_report_tasks(session: Session, award: Award, *, final_report_months: int,
                      now: datetime) -> list[ReportTask]:
    """Make the award's tasks match its periods and end: one status report per period but
    the last (due at the period's end), one final report (due ``final_report_months``
    after the end). Open tasks move with the award; submitted and accepted ones stay as
    they are; open status tasks of periods that no longer end before the last go."""
    wanted: dict[tuple[str, int], date] = {
        ("status", i): p.ends_at.date() for i, p in enumerate(award.periods[:-1])}
    wanted[("final", -1)] = add_months(award.expires_at, final_report_months).date()
    existing = {(t.kind, t.period_index): t for t in session.scalars(
        select(ReportTask).where(ReportTask.award_id == award.id))}
    for key, task in existing.items():
        if task.state != "open":
            continue
        if key not in wanted:
            session.delete(task)
        else:
            task.due_on = wanted[key]
    for (kind, index), due in wanted.items():
        if (kind, index) not in existing:
            session.add(ReportTask(award_id=award.id, award=award, kind=kind,
                                   period_index=index, due_on=due, state="open", summary="",
                                   publications=[], review_note="", created_at=now))
    session.flush()
    return list(session.scalars(select(ReportTask).where(ReportTask.award_id == award.id)
                                .order_by(ReportTask.due_on, ReportTask.id)))


def is_overdue(task: ReportTask, today: date) -> bool:
    """Not submitted (or returned) and due before ``today``."""
    return task.state == "open" and task.due_on < today


def visible_task(session: Session, user: User, task_id: int) -> ReportTask:
    task = session.get(ReportTask, task_id)
    if task is None or not can_see_project(session, user, task.award.project_id):
        raise NotFound(f"report task {task_id} not found", field="task",
                       hint="List them with `rechenwerk award reports`.")
    return task


def list_tasks(session: Session, user: User, *, award_id: int | None = None,
               state: str | None = None, overdue_on: date | None = None,
               limit: int = 50, offset: int = 0) -> Page[ReportTask]:
    """Report tasks the user may see (operators: all), soonest due first."""
    stmt = select(ReportTask).join(Award, Award.id == ReportTask.award_id).order_by(
        ReportTask.due_on, ReportTask.id)
    stmt = only_visible(stmt, Award.project_id, session, user)
    if award_id is not None:
        stmt = stmt.where(ReportTask.award_id == award_id)
    if state is not None:
        stmt = stmt.where(ReportTask.state == check_choice(state, set(STATES), "state"))
    if overdue_on is not None:
        stmt = stmt.where(ReportTask.state == "open", ReportTask.due_on < overdue_on)
    return paginate(session, stmt, limit, offset)


def overdue_final_reports(session: Session, project_id: int, today: date) -> list[ReportTask]:
    return list(session.scalars(
        select(ReportTask).join(Award, Award.id == ReportTask.award_id)
        .where(Award.project_id == project_id, ReportTask.kind == "final",
               ReportTask.state == "open", ReportTask.due_on < today)
        .order_by(ReportTask.due_on)))


def require_no_overdue_final_report(session: Session, project_id: int, slug: str,
                                    today: date) -> None:
    """Conflict naming the first overdue final report of the project, if any."""
    late = overdue_final_reports(session, project_id, today)
    if late:
        t = late[0]
        raise Conflict(
            f"project {slug!r} owes the final report of award {t.award_id} (due "
            f"{t.due_on.isoformat()}); the centre accepts no new proposals until it is "
            "submitted", field="project",
            hint=f"Submit it: `rechenwerk award report-submit {t.id} --summary ...`.")


def _publications(raw: list[dict[str, Any]], issues: list[FieldIssue]) -> list[dict[str, str]]:
    if len(raw) > MAX_PUBLICATIONS:
        issues.append(FieldIssue(("publications",), f"at most {MAX_PUBLICATIONS}, got "
                                 f"{len(raw)}"))
        return []
    out: list[dict[str, str]] = []
    for i, pub in enumerate(raw):
        doi = str(pub.get("doi", "")).strip()
        title = str(pub.get("title", "")).strip()
        if doi.lower().startswith("https://doi.org/"):
            doi = doi[len("https://doi.org/"):]
        if not DOI_RE.match(doi):
            issues.append(FieldIssue(("publications", i, "doi"), f"{doi!r} is not a DOI "
                                     "(like 10.1234/abc.5678)"))
        if not title or len(title) > 500:
            issues.append(FieldIssue(("publications", i, "title"),
                                     "must be 1-500 characters"))
        out.append({"doi": doi, "title": title})
    return out


def submit_report(session: Session, actor: User, task: ReportTask, *, summary: str,
                  publications: list[dict[str, Any]], now: datetime) -> ReportTask:
    """The PI submits (or resubmits after a return) the report."""
    require_project_role(session, actor, task.award.project, {ProjectRole.PI.value})
    if task.state != "open":
        raise InvalidTransition(f"report task {task.id} is already {task.state}",
                                field="state",
                                hint="An operator returns a report that needs changes.")
    issues: list[FieldIssue] = []
    summary = summary.strip()
    if not summary:
        issues.append(FieldIssue(("summary",), "must not be empty: results and use of the "
                                 "GPU-hours"))
    elif len(summary) > MAX_SUMMARY:
        issues.append(FieldIssue(("summary",), f"at most {MAX_SUMMARY} characters, got "
                                 f"{len(summary)}"))
    pubs = _publications(publications, issues)
    raise_issues(issues)
    task.summary, task.publications = summary, pubs
    task.state = "submitted"
    task.submitted_at, task.submitted_by_user_id = now, actor.id
    session.flush()
    record(session, actor, "report.submit", "award", task.award_id,
           {"task": task.id, "kind": task.kind, "publications": len(pubs),
            "document": task.document_name}, at=now)
    return task


def review_report(session: Session, actor: User, task: ReportTask, *, decision: str,
                  note: str, now: datetime) -> ReportTask:
    """An operator accepts a submitted report or returns it for changes (with a note)."""
    require_operator(actor)
    check_choice(decision, {"accepted", "returned"}, "decision")
    if task.state != "submitted":
        raise InvalidTransition(f"report task {task.id} is {task.state}, not submitted",
                                field="state")
    note = note.strip()
    if decision == "returned" and not note:
        raise InvalidInput("note: say what to change", field="note")
    task.state = "accepted" if decision == "accepted" else "open"
    task.reviewed_at, task.reviewed_by_user_id, task.review_note = now, actor.id, note
    session.flush()
    record(session, actor, "report.review", "award", task.award_id,
           {"task": task.id, "decision": decision, "note": note}, at=now)
    return task


def _clean_name(name: str) -> str:
    base = os.path.basename(name.replace("\\", "/")).strip()
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", base)[:100].strip("._") or "report"
    return cleaned if cleaned.lower().endswith(".pdf") else cleaned + ".pdf"


def document_path(data_dir: Path, task: ReportTask) -> Path:
    # by id only: nothing the user sent becomes part of a path
    return Path(data_dir) / "reports" / f"{task.id}.pdf"


def attach_document(session: Session, actor: User, task: ReportTask, *, name: str,
                    data: bytes, max_bytes: int, data_dir: Path,
                    now: datetime) -> ReportTask:
    """Store the report's PDF (replacing an earlier one) while it is not accepted."""
    require_project_role(session, actor, task.award.project, {ProjectRole.PI.value})
    if task.state == "accepted":
        raise InvalidTransition(f"report task {task.id} is accepted; its document is final",
                                field="state")
    if not data:
        raise InvalidInput("document: the file is empty", field="document")
    if len(data) > max_bytes:
        raise InvalidInput(f"document: {len(data):,} bytes is more than the limit of "
                           f"{max_bytes:,}", field="document",
                           hint="Compress the PDF or leave the figures out.")
    if not data.startswith(PDF_MAGIC):
        raise InvalidInput("document: not a PDF (it must start with %PDF-)",
                           field="document", hint="Export the report as PDF.")
    path = document_path(data_dir, task)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    task.document_name = _clean_name(name)
    task.document_bytes = len(data)
    task.document_sha256 = hashlib.sha256(data).hexdigest()
    session.flush()
    record(session, actor, "report.document", "award", task.award_id,
           {"task": task.id, "name": task.document_name, "bytes": len(data),
            "sha256": task.document_sha256}, at=now)
    return task


def readable_document(session: Session, user: User, task: ReportTask,
                      data_dir: Path) -> Path:
    """The stored PDF for members of the project and operators."""
    if not user.is_operator and not can_see_project(session, user, task.award.project_id):
        raise PermissionDenied("only the project's members and operators read its reports")
    path = document_path(data_dir, task)
    if task.document_name is None or not path.is_file():
        raise NotFound(f"report task {task.id} has no document", field="document")
    return path
