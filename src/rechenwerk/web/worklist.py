"""What needs this person, for the top of their dashboard: an operator's proposals by
the step of their review pipeline that is the operator's (check, assess, find reviewers,
rank, decide) and those past their decision deadline, award change requests, drained
nodes, failed jobs and undelivered mail; a reviewer's open reviews; a PI's unsubmitted
drafts. Each item is a count, a sentence and the page where the work is done; one small
query each (the open proposals' pipelines a few each), so the dashboard stays fast on a
big centre."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
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


@dataclass(frozen=True, slots=True)
class CountedWork:
    """One line of an operator's work that is a count: what is counted (a statement for
    the time now), the sentence's noun phrase for one and for many, and where to go."""

    key: str
    count: Callable[[datetime], Select[int]]
    nouns: tuple[str, str]
    rest: str
    href: str


def _count_of(model: type[Any], *where: Callable[[datetime], Any]) -> Callable[
        [datetime], Select[int]]:
    def stmt(now: datetime) -> Select[int]:
        return select(func.count()).select_from(model).where(*(w(now) for w in where))
    return stmt


# After the pipeline's steps and before drained nodes, in the dashboard's order.
COUNTED_WORK = (
    CountedWork("overdue", _count_of(Proposal, lambda now: Proposal.due_on < now.date(),
                                     lambda _: Proposal.state.in_(OPEN_STATES)),
                ("proposal is", "proposals are"),
                "past the decision deadline of their call type", "/proposals?overdue=true"),
    CountedWork("projects-pending", _count_of(Project, lambda _: Project.approval == "pending"),
                ("new project waits", "new projects wait"), "for approval", "/ops/projects"),
    CountedWork("reports-to-review",
                _count_of(ReportTask, lambda _: ReportTask.state == "submitted"),
                ("award report waits", "award reports wait"), "for review", "/report-tasks"),
    CountedWork("reports-overdue",
                _count_of(ReportTask, lambda _: ReportTask.state == "open",
                          lambda _: ReportTask.kind == "final",
                          lambda now: ReportTask.due_on < now.date()),
                ("final report is", "final reports are"), "overdue",
                "/report-tasks?state=open"),
    CountedWork("award-changes",
                _count_of(AwardChange,
                          lambda _: AwardChange.state == AwardChangeState.REQUESTED.value),
                ("award change request waits", "award change requests wait"),
                "for a decision", "/award-changes"),
)
# After drained nodes.
COUNTED_WORK_LAST = (
    CountedWork("failed-jobs",
                _count_of(Job, lambda _: Job.state == "failed",
                          lambda now: Job.ended_at >= now - FAILED_WINDOW),
                ("job", "jobs"), "failed in the last 24 hours", "/jobs?state=failed"),
    CountedWork("mail", _count_of(OutboxMessage, lambda _: OutboxMessage.gave_up.is_(True)),
                ("notification", "notifications"), "could not be delivered",
                "/ops/notifications"),
)


def _counted(db: Session, now: datetime, work: tuple[CountedWork, ...]) -> list[WorkItem]:
    items = []
    for w in work:
        n = _count(db, w.count(now))
        if n:
            items.append(WorkItem(w.key, n, f"{_plural(n, *w.nouns)} {w.rest}", w.href))
    return items


def operator_items(db: Session, now: datetime, drained_nodes: list[str],
                   deadlines: Deadlines | None = None) -> list[WorkItem]:
    """``deadlines``: the centre's calendar for the review pipeline (default: today,
    no holidays)."""
    items = pipeline_items(db, deadlines or Deadlines(today=now.date()))
    items += _counted(db, now, COUNTED_WORK)
    if drained_nodes:
        shown = ", ".join(drained_nodes[:5]) + (" ..." if len(drained_nodes) > 5 else "")
        items.append(WorkItem(
            "drained", len(drained_nodes),
            f"{_plural(len(drained_nodes), 'node is', 'nodes are')} drained ({shown})",
            "/ops/cluster"))
    return items + _counted(db, now, COUNTED_WORK_LAST)
