"""What needs this person, for the top of their dashboard: an operator's proposals by
the step of their review pipeline that is the operator's (check, assess, find reviewers,
rank, decide) and those past their decision deadline, award change requests, drained
nodes, failed jobs and undelivered mail; a reviewer's open reviews; a PI's unsubmitted
drafts. Each item is a count, a sentence and the page where the work is done; one small
query each (the open proposals' pipelines a few each), so the dashboard stays fast on a
big centre."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rechenwerk.access.models import (
    Award,
    AwardChange,
    AwardChangeState,
    Project,
    Proposal,
    ProposalState,
    ReportTask,
    Review,
    User,
)
from rechenwerk.access.proposal_states import OPEN_STATES
from rechenwerk.access.review_pipeline import Deadlines, current_step
from rechenwerk.jobs.models import Job
from rechenwerk.notifications.models import OutboxMessage

FAILED_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class WorkItem:
    key: str  # stable, for tests and styling
    count: int
    text: str
    href: str


def _count(db: Session, stmt: object) -> int:
    return int(db.scalar(stmt) or 0)  # type: ignore[call-overload]


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def reviewer_items(db: Session, user: User) -> list[WorkItem]:
    if not user.is_reviewer:
        return []
    n = _count(db, select(func.count()).select_from(Review).where(
        Review.reviewer_user_id == user.id, Review.submitted_at.is_(None),
        Review.proposal_id.not_in(  # withdrawn: the review is no longer requested
            select(Proposal.id).where(Proposal.state == ProposalState.WITHDRAWN.value))))
    if not n:
        return []
    return [WorkItem("reviews", n, f"{_plural(n, 'proposal waits', 'proposals wait')} for "
                     "your review", "/reviews")]


def pi_items(db: Session, user: User, today: date | None = None,
             soon_days: int = 14) -> list[WorkItem]:
    items: list[WorkItem] = []
    n = _count(db, select(func.count()).select_from(Proposal).where(
        Proposal.applicant_user_id == user.id, Proposal.state == ProposalState.DRAFT.value))
    if n:
        items.append(WorkItem(
            "drafts", n, f"{_plural(n, 'draft proposal is', 'draft proposals are')} "
            "not submitted yet", "/proposals?state=draft"))
    if today is not None:
        due = db.scalars(select(ReportTask).join(Award, Award.id == ReportTask.award_id)
                         .join(Project, Project.id == Award.project_id)
                         .where(Project.pi_user_id == user.id, ReportTask.state == "open",
                                ReportTask.due_on <= today + timedelta(days=soon_days))
                         .order_by(ReportTask.due_on)).all()
        if due:
            first = due[0]
            late = sum(1 for t in due if t.due_on < today)
            items.append(WorkItem(
                "reports", len(due),
                f"{_plural(len(due), 'award report is', 'award reports are')} due"
                + (f" ({late} overdue)" if late else "") + f", the first on "
                f"{first.due_on.isoformat()}", f"/awards/{first.award_id}"))
    return items


# What an operator does for a proposal at each step of its review pipeline (the steps
# where others act, the reviewers or the applicant, are not the operator's work):
# key, (one, many) and what they need.
STEP_WORK = {
    "eligibility": ("to-check", ("proposal needs", "proposals need"), "its eligibility check"),
    "technical": ("to-assess", ("proposal needs", "proposals need"),
                  "its technical assessment"),
    "scientific": ("to-route", ("proposal needs", "proposals need"), "reviewers"),
    "ranking": ("to-rank", ("proposal waits", "proposals wait"),
                "for the ranking of its call"),
    "decision": ("to-decide", ("proposal is", "proposals are"), "ready to decide"),
}


def _needs_reviewers(db: Session, proposal: Proposal) -> bool:
    """Fewer reviewers on it (invited and not declined) than its call type's reviews."""
    live = _count(db, select(func.count()).select_from(Review).where(
        Review.proposal_id == proposal.id, Review.accepted.is_not(False)))
    return live < proposal.call.call_type.min_reviews


def pipeline_items(db: Session, deadlines: Deadlines) -> list[WorkItem]:
    """Open proposals by the step of their review pipeline the operator does next
    (``review_pipeline.current_step``): a Fast Lane proposal needs its eligibility check,
    not reviewers, and "ready to decide" counts those at the decision step. This asks
    the pipeline of each open proposal (a few queries each)."""
    found: dict[str, list[Proposal]] = {}
    for p in db.scalars(select(Proposal).where(Proposal.state.in_(OPEN_STATES))
                        .order_by(Proposal.id)):
        step = current_step(db, p, deadlines=deadlines)
        if step == "scientific" and not _needs_reviewers(db, p):
            continue  # the reviewers' work now
        if step in STEP_WORK:
            found.setdefault(step, []).append(p)
    items = []
    for step, (key, verbs, need) in STEP_WORK.items():
        props = found.get(step, [])
        if not props:
            continue
        n = len(props)
        verb = verbs[0] if n == 1 else verbs[1]
        if n > 1:
            need = need.replace("its ", "their ")
        states = {p.state for p in props}
        href = f"/proposals?state={states.pop()}" if len(states) == 1 else "/proposals"
        items.append(WorkItem(key, n, f"{n} {verb} {need}", href))
    return items


def operator_items(db: Session, now: datetime, drained_nodes: list[str],
                   deadlines: Deadlines | None = None) -> list[WorkItem]:
    """``deadlines``: the centre's calendar for the review pipeline (default: today,
    no holidays)."""
    items: list[WorkItem] = []
    items += pipeline_items(db, deadlines or Deadlines(today=now.date()))
    overdue = _count(db, select(func.count()).select_from(Proposal).where(
        Proposal.due_on < now.date(), Proposal.state.in_(OPEN_STATES)))
    if overdue:
        items.append(WorkItem(
            "overdue", overdue,
            f"{_plural(overdue, 'proposal is', 'proposals are')} past the decision "
            "deadline of their call type", "/proposals?overdue=true"))
    pending = _count(db, select(func.count()).select_from(Project).where(
        Project.approval == "pending"))
    if pending:
        items.append(WorkItem(
            "projects-pending", pending,
            f"{_plural(pending, 'new project waits', 'new projects wait')} for approval",
            "/ops/projects"))
    submitted = _count(db, select(func.count()).select_from(ReportTask).where(
        ReportTask.state == "submitted"))
    if submitted:
        items.append(WorkItem(
            "reports-to-review", submitted,
            f"{_plural(submitted, 'award report waits', 'award reports wait')} for review",
            "/report-tasks"))
    late = _count(db, select(func.count()).select_from(ReportTask).where(
        ReportTask.state == "open", ReportTask.kind == "final",
        ReportTask.due_on < now.date()))
    if late:
        items.append(WorkItem(
            "reports-overdue", late,
            f"{_plural(late, 'final report is', 'final reports are')} overdue",
            "/report-tasks?state=open"))
    changes = _count(db, select(func.count()).select_from(AwardChange).where(
        AwardChange.state == AwardChangeState.REQUESTED.value))
    if changes:
        items.append(WorkItem(
            "award-changes", changes,
            f"{_plural(changes, 'award change request waits', 'award change requests wait')}"
            " for a decision", "/award-changes"))
    if drained_nodes:
        shown = ", ".join(drained_nodes[:5]) + (" ..." if len(drained_nodes) > 5 else "")
        items.append(WorkItem(
            "drained", len(drained_nodes),
            f"{_plural(len(drained_nodes), 'node is', 'nodes are')} drained ({shown})",
            "/ops/cluster"))
    failed = _count(db, select(func.count()).select_from(Job).where(
        Job.state == "failed", Job.ended_at >= now - FAILED_WINDOW))
    if failed:
        items.append(WorkItem(
            "failed-jobs", failed,
            f"{_plural(failed, 'job', 'jobs')} failed in the last 24 hours",
            "/jobs?state=failed"))
    undelivered = _count(db, select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.gave_up.is_(True)))
    if undelivered:
        items.append(WorkItem(
            "mail", undelivered,
            f"{_plural(undelivered, 'notification', 'notifications')} could not be "
            "delivered", "/ops/notifications"))
    return items
