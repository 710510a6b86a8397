"""Queue and deliver notifications.

Events (each queued once, thanks to a unique ``dedup_key``):

- ``proposal_decided``: a proposal was accepted or rejected -> its applicant and the PI;
- ``proposal_withdrawn``: a proposal was withdrawn -> the reviewers assigned to it;
- ``award_expiring``: an award expires within ``EXPIRY_NOTICE_DAYS`` -> the PI;
- ``balance_low``: an active award period's available GPU-hours fell below the PI's
  threshold (``low_balance_percent`` of the period's award, default 10 %) -> the PI;
- ``job_finished`` / ``job_failed``: opt-in per user, for their own jobs;
- ``support_new``, ``support_reply``, ``support_assigned``, ``support_answered``,
  ``support_closed``: queued by ``support.service`` in the transaction of the change
  (not by the scan), to operators, the assignee or the requester.

:func:`scan` looks at the database and queues what is due; it is idempotent, so the
server's notifier thread can call it every few seconds and a restart loses nothing.
:func:`deliver_due` sends queued messages through a sender and retries failures with
exponential back-off (1 min, 2 min, 4 min ... at most 6 h; gives up after
``MAX_ATTEMPTS`` and keeps the row for an operator). Delivery is at-least-once: if the
process dies between sending and committing, the message is sent again.

Functions take ``session`` and never commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rechenwerk.access.models import Award, Project, Proposal, ReportTask, Review, User
from rechenwerk.errors import InvalidInput
from rechenwerk.notifications.models import NotificationPreference, OutboxMessage

if TYPE_CHECKING:
    from rechenwerk.jobs.models import Job
from rechenwerk.notifications.senders import Mail, Sender

log = logging.getLogger("rechenwerk.notifications")

EXPIRY_NOTICE_DAYS = 14
LOOKBACK = timedelta(days=7)  # events older than this when first scanned are not mailed
RESCAN_MARGIN = timedelta(minutes=10)  # jobs whose end was committed late are still seen
MAX_ATTEMPTS = 8
BACKOFF_BASE_S = 60.0
BACKOFF_MAX_S = 6 * 3600.0
EVENTS = ("proposal_decided", "proposal_withdrawn", "award_expiring", "balance_low",
          "job_finished", "job_failed", "support_new", "support_reply", "support_assigned",
          "support_answered", "support_closed", "report_due")


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    sent: int
    failed: int
    gave_up: int


# --------------------------------------------------------------------------- preferences


def get_preferences(session: Session, user: User) -> NotificationPreference:
    """The user's preferences (defaults, not stored, when never changed)."""
    pref = session.get(NotificationPreference, user.id)
    if pref is None:
        pref = NotificationPreference(user_id=user.id, job_finished=False, job_failed=False,
                                      low_balance_percent=10)
    return pref


def set_preferences(
    session: Session, user: User, *, job_finished: bool, job_failed: bool,
    low_balance_percent: int, now: datetime,
) -> NotificationPreference:
    if not 0 <= low_balance_percent <= 100:
        raise InvalidInput(
            f"low_balance_percent must be between 0 and 100, got {low_balance_percent}",
            field="low_balance_percent",
            hint="0 turns the warning off; 10 warns when 10 % of a period's hours are left.",
        )
    pref = session.get(NotificationPreference, user.id)
    if pref is None:
        pref = NotificationPreference(user_id=user.id)
        session.add(pref)
    pref.job_finished = job_finished
    pref.job_failed = job_failed
    pref.low_balance_percent = low_balance_percent
    pref.updated_at = now
    session.flush()
    return pref


# --------------------------------------------------------------------------- queue


def enqueue(
    session: Session, *, user: User, event: str, subject: str, body: str, dedup_key: str,
    now: datetime,
) -> OutboxMessage | None:
    """Queue one message; None when it was queued before (same ``dedup_key``) or the user
    has no e-mail address."""
    if event not in EVENTS:
        raise InvalidInput(f"unknown notification event {event!r}", field="event",
                           hint="Known events: " + ", ".join(EVENTS) + ".")
    if not user.email or "@" not in user.email:
        return None
    if session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedup_key == dedup_key)):
        return None
    msg = OutboxMessage(user_id=user.id, to_address=user.email, event=event,
                        subject=subject[:300], body=body, dedup_key=dedup_key, created_at=now,
                        next_attempt_at=now, attempts=0, last_error="", gave_up=False)
    try:
        with session.begin_nested():
            session.add(msg)
            session.flush()
    except IntegrityError:  # another process queued it at the same moment
        return None
    return msg


def _greeting(user: User) -> str:
    return f"Hello {user.full_name or user.username},\n\n"


_SIGNATURE = "\n\n-- \nRechenwerk (change your notification settings in the portal under Settings)"


def _scan_proposals(session: Session, now: datetime) -> int:
    n = 0
    rows = session.scalars(select(Proposal).where(
        Proposal.state.in_(("accepted", "rejected")), Proposal.decided_at.is_not(None),
        Proposal.decided_at > now - LOOKBACK))
    for p in rows:
        recipients = {p.applicant_user_id, p.project.pi_user_id}
        for uid in recipients:
            user = session.get(User, uid)
            if user is None or not user.is_active:
                continue
            comment = f"\n\nComment: {p.decision_comment}" if p.decision_comment else ""
            next_step = ("An operator will now create the award; you will see its GPU-hours "
                         "on the project page." if p.state == "accepted" else
                         "You may revise the proposal and apply to another call.")
            if enqueue(session, user=user, event="proposal_decided",
                       subject=f"Proposal {p.id} {p.state}: {p.title}",
                       body=_greeting(user) + f"proposal {p.id} \"{p.title}\" of project "
                       f"{p.project.slug} was {p.state}.{comment}\n\n{next_step}" + _SIGNATURE,
                       dedup_key=f"proposal-decided:{p.id}:{uid}", now=now):
                n += 1
    return n


def _scan_withdrawn_proposals(session: Session, now: datetime) -> int:
    """Tell each reviewer assigned to a withdrawn proposal that it is off their list."""
    n = 0
    rows = session.execute(
        select(Proposal, Review).join(Review, Review.proposal_id == Proposal.id)
        .where(Proposal.state == "withdrawn", Proposal.withdrawn_at.is_not(None),
               Proposal.withdrawn_at > now - LOOKBACK)
        .order_by(Proposal.id, Review.id)).all()
    for p, review in rows:
        user = session.get(User, review.reviewer_user_id)
        if user is None or not user.is_active:
            continue
        yours = ("Thank you for your review all the same." if review.submitted_at is not None
                 else "Your review is no longer needed; the proposal has left your list of "
                      "assigned reviews.")
        if enqueue(session, user=user, event="proposal_withdrawn",
                   subject=f"Proposal {p.id} withdrawn: {p.title}",
                   body=_greeting(user) + f"proposal {p.id} \"{p.title}\" of project "
                   f"{p.project.slug}, assigned to you for review, was withdrawn "
                   f"on {p.withdrawn_at:%Y-%m-%d}. {yours}" + _SIGNATURE,
                   dedup_key=f"proposal-withdrawn:{p.id}:{user.id}", now=now):
            n += 1
    return n


def _scan_expiring_awards(session: Session, now: datetime) -> int:
    n = 0
    rows = session.scalars(select(Award).where(
        Award.expires_at > now, Award.expires_at <= now + timedelta(days=EXPIRY_NOTICE_DAYS)))
    for a in rows:
        pi = session.get(User, a.project.pi_user_id)
        if pi is None or not pi.is_active:
            continue
        days = (a.expires_at - now).total_seconds() / 86400.0
        if enqueue(session, user=pi, event="award_expiring",
                   subject=f"Award {a.id} of {a.project.slug} expires in {days:.0f} days",
                   body=_greeting(pi) + f"the award of {a.gpu_hours:,.0f} GPU-hours "
                   f"({a.gpu_type}) to project {a.project.slug} expires on "
                   f"{a.expires_at:%Y-%m-%d %H:%M} UTC. Unused GPU-hours cannot be used after "
                   "that. To continue, write a proposal to an open call." + _SIGNATURE,
                   dedup_key=f"award-expiring:{a.id}", now=now):
            n += 1
    return n


def _scan_low_balances(session: Session, now: datetime) -> int:
    from rechenwerk.accounting.balance import project_balance

    n = 0
    projects = session.scalars(select(Project).where(Project.id.in_(
        select(Award.project_id).where(Award.starts_at <= now, Award.expires_at > now))))
    for project in projects:
        pi = session.get(User, project.pi_user_id)
        if pi is None or not pi.is_active:
            continue
        threshold = get_preferences(session, pi).low_balance_percent / 100.0
        if threshold <= 0:
            continue
        for period in project_balance(session, project, now).periods:
            if period.awarded_gpu_hours <= 0:
                continue
            left = period.available_gpu_hours / period.awarded_gpu_hours
            if left >= threshold:
                continue
            if enqueue(session, user=pi, event="balance_low",
                       subject=f"{project.slug}: {max(left, 0.0):.0%} of the GPU-hours left",
                       body=_greeting(pi) + f"project {project.slug} has "
                       f"{period.available_gpu_hours:,.1f} of {period.awarded_gpu_hours:,.1f} "
                       f"GPU-hours ({period.gpu_type}) left in the period ending "
                       f"{period.ends_at:%Y-%m-%d} (used {period.settled_gpu_hours:,.1f}, "
                       f"committed by pending and running jobs "
                       f"{period.committed_gpu_hours:,.1f}). New jobs are refused or run in "
                       "the low QOS once it is used up." + _SIGNATURE,
                       dedup_key=f"balance-low:{period.award_period_id}", now=now):
                n += 1
    return n


def _scan_jobs(session: Session, now: datetime, since: datetime | None = None) -> int:
    from rechenwerk.jobs.models import Job

    opted = session.execute(select(NotificationPreference.user_id,
                                   NotificationPreference.job_finished,
                                   NotificationPreference.job_failed).where(
        (NotificationPreference.job_finished.is_(True))
        | (NotificationPreference.job_failed.is_(True)))).all()
    if not opted:
        return 0
    wants = {uid: (fin, fail) for uid, fin, fail in opted}
    n = 0
    rows = session.scalars(select(Job).where(
        Job.user_id.in_(list(wants)), Job.ended_at.is_not(None),
        Job.ended_at > max(now - LOOKBACK, since - RESCAN_MARGIN if since else now - LOOKBACK),
        Job.state.in_(("completed", "failed", "timeout", "cancelled"))))
    arrays_seen: set[int] = set()
    for job in rows:
        if job.array_job_id is not None:
            # One mail per job array, when its last task has ended (as Slurm mails an
            # array once), not one per task of a 10,000-task sweep.
            if job.array_job_id not in arrays_seen:
                arrays_seen.add(job.array_job_id)
                n += _array_ended(session, job, wants, now)
            continue
        fin, fail = wants[job.user_id]
        event = "job_finished" if job.state == "completed" else "job_failed"
        if (event == "job_finished" and not fin) or (event == "job_failed" and not fail):
            continue
        if job.state == "cancelled" and job.cancel_requested_at is not None:
            continue  # the user cancelled it: no mail needed
        user = session.get(User, job.user_id)
        if user is None or not user.is_active:
            continue
        took = ((job.ended_at - job.started_at).total_seconds() / 60.0
                if job.started_at and job.ended_at else 0.0)
        reason = f"\nReason: {job.reason}" if job.reason and event == "job_failed" else ""
        if enqueue(session, user=user, event=event,
                   subject=f"Job {job.id} ({job.name}) {job.state}",
                   body=_greeting(user) + f"job {job.id} \"{job.name}\" ended: {job.state}"
                   f"{f', exit code {job.exit_code}' if job.exit_code is not None else ''} "
                   f"after {took:.1f} minutes on {job.gpus} GPU(s).{reason}\n\nLogs: "
                   f"rechenwerk logs {job.id}, or the job's page in the portal." + _SIGNATURE,
                   dedup_key=f"job-ended:{job.id}:{job.attempt}", now=now):
            n += 1
    return n


def _array_ended(session: Session, task: Job, wants: dict[int, tuple[bool, bool]],
                 now: datetime) -> int:
    """The one mail of a job array whose tasks have all ended: tasks per final state."""
    from rechenwerk.jobs.models import Job

    counts: dict[str, int] = {str(state): int(n) for state, n in session.execute(
        select(Job.state, func.count()).where(Job.array_job_id == task.array_job_id)
        .group_by(Job.state))}
    if any(state not in ("completed", "failed", "timeout", "cancelled") for state in counts):
        return 0  # tasks still waiting or running: mailed when the last one ends
    fin, fail = wants[task.user_id]
    event = "job_finished" if set(counts) == {"completed"} else "job_failed"
    if (event == "job_finished" and not fin) or (event == "job_failed" and not fail):
        return 0
    user = session.get(User, task.user_id)
    if user is None or not user.is_active:
        return 0
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    total = sum(counts.values())
    return int(enqueue(
        session, user=user, event=event,
        subject=f"Job array {task.array_job_id} ({task.name}) ended: {summary}",
        body=_greeting(user) + f"job array {task.array_job_id} \"{task.name}\" ({total} "
        f"tasks) has ended: {summary}.\n\nTasks: rechenwerk job show {task.array_job_id}, "
        "or the array's page in the portal." + _SIGNATURE,
        dedup_key=f"array-ended:{task.array_job_id}", now=now) is not None)


def _scan_reports_due(session: Session, now: datetime, reminder_days: int) -> int:
    """Remind the PI once per report that is due within ``reminder_days`` (or overdue)
    and not submitted."""
    n = 0
    rows = session.scalars(select(ReportTask).where(
        ReportTask.state == "open",
        ReportTask.due_on <= (now + timedelta(days=reminder_days)).date()))
    for t in rows:
        pi = session.get(User, t.award.project.pi_user_id)
        if pi is None or not pi.is_active:
            continue
        what = ("final report" if t.kind == "final"
                else f"status report for period {t.period_index + 1}")
        late = t.due_on < now.date()
        if enqueue(session, user=pi, event="report_due",
                   subject=f"The {what} of award {t.award_id} ({t.award.project.slug}) is "
                           + ("overdue" if late else f"due on {t.due_on.isoformat()}"),
                   body=_greeting(pi) + f"the {what} of award {t.award_id} (project "
                   f"{t.award.project.slug}) is due on {t.due_on.isoformat()}"
                   + (" and has not been submitted yet" if late else "") + ". Submit it on "
                   "the award's page in the portal (results, use of the GPU-hours, "
                   f"publications, the PDF) or with `rechenwerk award report-submit {t.id}`."
                   + _SIGNATURE,
                   dedup_key=f"report-due:{t.id}:{t.due_on.isoformat()}", now=now):
            n += 1
    return n


def scan(session: Session, *, now: datetime, since: datetime | None = None,
         report_reminder_days: int = 14) -> int:
    """Queue every notification that is due; returns how many were queued. ``since`` (the
    previous scan) limits the look at ended jobs to those that ended after it (minus a
    margin for late commits); without it the last ``LOOKBACK`` is scanned."""
    return (_scan_proposals(session, now) + _scan_withdrawn_proposals(session, now)
            + _scan_expiring_awards(session, now)
            + _scan_low_balances(session, now) + _scan_jobs(session, now, since)
            + _scan_reports_due(session, now, report_reminder_days))


# --------------------------------------------------------------------------- deliver


def backoff_s(attempts: int) -> float:
    return float(min(BACKOFF_BASE_S * 2.0 ** max(attempts - 1, 0), BACKOFF_MAX_S))


def deliver_due(session: Session, sender: Sender, *, now: datetime,
                limit: int = 100) -> DeliveryReport:
    """Send queued messages that are due; failures are retried later."""
    due = session.scalars(
        select(OutboxMessage).where(OutboxMessage.sent_at.is_(None),
                                    OutboxMessage.gave_up.is_(False),
                                    OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.id).limit(limit)
    ).all()
    sent = failed = gave_up = 0
    for msg in due:
        try:
            sender.send(Mail(to=msg.to_address, subject=msg.subject, body=msg.body))
        except Exception as exc:  # any failure of the transport: retry later
            msg.attempts += 1
            msg.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if msg.attempts >= MAX_ATTEMPTS:
                msg.gave_up = True
                gave_up += 1
                log.error("notification %s to %s given up after %d attempts: %s", msg.id,
                          msg.to_address, msg.attempts, msg.last_error)
            else:
                msg.next_attempt_at = now + timedelta(seconds=backoff_s(msg.attempts))
                failed += 1
            continue
        msg.attempts += 1
        msg.sent_at = now
        msg.last_error = ""
        sent += 1
    session.flush()
    return DeliveryReport(sent, failed, gave_up)


OUTBOX_STATUSES = ("queued", "failed", "sent")


def list_outbox(session: Session, actor: User, *, status: str = "",
                limit: int = 100) -> list[OutboxMessage]:
    """The outbox for operators: queued (incl. retrying), failed (given up) or sent."""
    from rechenwerk.access.security import require_operator

    require_operator(actor)
    stmt = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if status == "queued":
        stmt = stmt.where(OutboxMessage.sent_at.is_(None), OutboxMessage.gave_up.is_(False))
    elif status == "failed":
        stmt = stmt.where(OutboxMessage.gave_up.is_(True))
    elif status == "sent":
        stmt = stmt.where(OutboxMessage.sent_at.is_not(None))
    elif status:
        raise InvalidInput(f"unknown outbox status {status!r}", field="status",
                           hint="Use one of: " + ", ".join(OUTBOX_STATUSES) + ".")
    return list(session.scalars(stmt))


def requeue(session: Session, actor: User, message_id: int, *, now: datetime) -> OutboxMessage:
    """Send a message that was given up again (operators), e.g. after fixing the relay."""
    from rechenwerk.access.audit import record
    from rechenwerk.access.security import require_operator
    from rechenwerk.errors import Conflict, NotFound

    require_operator(actor)
    msg = session.get(OutboxMessage, message_id)
    if msg is None:
        raise NotFound(f"notification {message_id} not found", field="message")
    if msg.sent_at is not None:
        raise Conflict(f"notification {message_id} was already sent", field="message")
    msg.gave_up = False
    msg.attempts = 0
    msg.next_attempt_at = now
    record(session, actor, "notification.requeue", "notification", msg.id,
           {"to": msg.to_address, "subject": msg.subject}, at=now)
    session.flush()
    return msg


def recent_for_user(session: Session, user: User, limit: int = 20) -> list[OutboxMessage]:
    return list(session.scalars(
        select(OutboxMessage).where(OutboxMessage.user_id == user.id)
        .order_by(OutboxMessage.id.desc()).limit(limit)))
