"""What needs this person, for the top of their dashboard: an operator's proposals to
route and decide and those past their decision deadline, award change requests, drained
nodes, failed jobs and undelivered mail; a reviewer's open reviews; a PI's unsubmitted
drafts. Each item is a count, a sentence and the page where the work is done; one small
query each, so the dashboard stays fast on a big centre."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, exists, func, select
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


def operator_items(db: Session, now: datetime, drained_nodes: list[str]) -> list[WorkItem]:
    items: list[WorkItem] = []
    submitted = _count(db, select(func.count()).select_from(Proposal).where(
        Proposal.state == ProposalState.SUBMITTED.value))
    if submitted:
        items.append(WorkItem(
            "to-route", submitted,
            f"{_plural(submitted, 'submitted proposal needs', 'submitted proposals need')} "
            "reviewers", "/proposals?state=submitted"))
    pending_review = exists().where(Review.proposal_id == Proposal.id,
                                    Review.submitted_at.is_(None))
    any_review = exists().where(Review.proposal_id == Proposal.id)
    to_decide = _count(db, select(func.count()).select_from(Proposal).where(and_(
        Proposal.state == ProposalState.UNDER_REVIEW.value, any_review, ~pending_review)))
    if to_decide:
        items.append(WorkItem(
            "to-decide", to_decide,
            f"{_plural(to_decide, 'proposal has', 'proposals have')} all reviews in: "
            "ready to decide", "/proposals?state=under_review"))
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
