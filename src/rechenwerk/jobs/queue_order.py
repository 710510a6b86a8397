"""The queue as the scheduling core orders it, each job with its priority term by term.

``squeue`` and ``sprio`` for Rechenwerk: the API, the CLI and the portal list waiting jobs
in the order the configured policy's next main pass considers them, not by QOS and
submit time. Positions count every pending job of the centre, so a user sees how many
jobs are ahead of theirs without seeing whose they are.

Where the order comes from: the scheduler loop publishes its order (the jobs its pass
left pending, each with its priority) on its runtime's :class:`QueueOrderBoard` and in
the ``queue_orders`` row (:func:`store_order`) for the other server processes, when it
changed, else every ``ORDER_REFRESH_S`` (``jobs/loop.py``); the views serve that order,
"as of" its cycle, while it is fresh (:data:`MAX_AGE_S`). Jobs that left the queue since
are dropped, jobs that joined it since follow at the end without a position. Without a
fresh order (no loop runs cycles: the scheduler is off, a self-scheduling backend, the
leader stopped) the order is computed from a fresh snapshot (``scheduling.queue_view``),
a snapshot and a scheduler build per request (about 0.3 s with 4,000 pending jobs over
1,000 projects).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.access.models import User
from rechenwerk.clock import Clock
from rechenwerk.config import Settings
from rechenwerk.errors import InvalidTransition
from rechenwerk.execution.base import ExecutionBackend
from rechenwerk.jobs import service
from rechenwerk.jobs.models import Job, QueueOrderRecord
from rechenwerk.jobs.policy_config import configured_policy
from rechenwerk.jobs.snapshot import SnapshotBuilder
from rechenwerk.jobs.states import JobState
from rechenwerk.scheduling.arrays import hold_array_excess
from rechenwerk.scheduling.model import PriorityFactors, QueuedJob, QueueView
from rechenwerk.scheduling.queue_view import explain_queue


@dataclass(frozen=True, slots=True)
class QueueEntry:
    job: Job
    # None: not in the core's queue (held back for a dependency or an array's %N, or
    # submitted after the snapshot was taken)
    position: int | None
    priority: PriorityFactors | None


@dataclass(frozen=True, slots=True)
class OrderedQueue:
    policy: str
    order: str  # the policy's rule in words
    length: int  # pending jobs of the whole centre
    entries: list[QueueEntry]  # the ones the user may see, in the core's order
    # when the order was taken: a scheduler cycle's snapshot, or None (computed now)
    as_of: datetime | None = None


# A published order older than this is not served (the loop stopped or lost the lead);
# the views compute the order instead. Cycles run every scheduler_interval_s (1 s).
MAX_AGE_S = 120.0


@dataclass(frozen=True, slots=True)
class PublishedOrder:
    view: QueueView
    at: datetime  # the cycle's snapshot time (the loop's clock)
    ids: frozenset[str]  # the view's job ids


def _published(view: QueueView, at: datetime) -> PublishedOrder:
    return PublishedOrder(view, at, frozenset(q.job_id for q in view.jobs))


class QueueOrderBoard:
    """The last scheduler cycle's queue order: written by the loop (its thread), read by
    the request handlers; one per runtime (process). A process whose loop does not run
    cycles reads the order the leading loop stored (:func:`store_order`), and keeps the
    last one it read until a newer one is stored."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: PublishedOrder | None = None
        self._stored: PublishedOrder | None = None  # read from the database

    def publish(self, view: QueueView, at: datetime) -> None:
        order = _published(view, at)
        with self._lock:
            self._latest = order

    def latest(self, now: datetime, max_age_s: float = MAX_AGE_S) -> PublishedOrder | None:
        """The last order, unless it is older than ``max_age_s`` at ``now``."""
        with self._lock:
            order = self._latest
        if order is None or now - order.at > timedelta(seconds=max_age_s):
            return None
        return order

    def fresh(self, session: Session, now: datetime,
              max_age_s: float = MAX_AGE_S) -> PublishedOrder | None:
        """This process's loop's order, else the one the leading loop stored, while
        fresh; the stored one is read again only when a newer one is there (one
        primary-key look-up per call)."""
        order = self.latest(now, max_age_s)
        if order is not None:
            return order
        at = session.scalar(select(QueueOrderRecord.at).where(QueueOrderRecord.id == 1))
        if at is None or now - at > timedelta(seconds=max_age_s):
            return None
        with self._lock:
            cached = self._stored
        if cached is not None and cached.at == at:
            return cached
        record = session.get(QueueOrderRecord, 1)
        if record is None:
            return None
        order = _published(view_of_record(record), record.at)
        with self._lock:
            self._stored = order
        return order


def _terms(p: PriorityFactors | None) -> list[float]:
    return [] if p is None else [round(p.age, 3), round(p.fairshare, 3),
                                 round(p.jobsize, 3), round(p.qos, 3)]


def store_order(session: Session, view: QueueView, at: datetime) -> None:
    """The loop's order where every server process reads it (the one row of
    ``queue_orders``); priority terms rounded to 3 decimals, as the API gives them."""
    jobs = [[int(q.job_id), *_terms(q.priority)] for q in view.jobs]
    record = session.get(QueueOrderRecord, 1)
    if record is None:
        session.add(QueueOrderRecord(id=1, at=at, policy=view.policy,
                                     order_rule=view.order, jobs=jobs))
    else:
        record.at, record.policy, record.order_rule, record.jobs = (
            at, view.policy, view.order, jobs)


def view_of_record(record: QueueOrderRecord) -> QueueView:
    return QueueView(policy=record.policy, order=record.order_rule, jobs=tuple(
        QueuedJob(job_id=str(row[0]), position=i,
                  priority=PriorityFactors(*row[1:5]) if len(row) >= 5 else None)
        for i, row in enumerate(record.jobs, start=1)))


def core_view(session: Session, *, backend: ExecutionBackend, clock: Clock,
              settings: Settings) -> QueueView:
    policy = configured_policy(settings)
    builder = SnapshotBuilder(backend, clock, policy.params.fairshare_half_life_s)
    snap, _ = builder.build(session)
    snap, _held = hold_array_excess(snap)  # tasks beyond their array's %N: not queued yet
    return explain_queue(policy, snap)


def queue_view(session: Session, *, backend: ExecutionBackend, clock: Clock,
               settings: Settings, board: QueueOrderBoard | None = None
               ) -> tuple[QueueView, datetime | None]:
    """The last cycle's order from ``board`` with its time, while fresh; else the order
    computed now (time None)."""
    published = board.fresh(session, clock.now()) if board is not None else None
    if published is not None:
        return published.view, published.at
    return core_view(session, backend=backend, clock=clock, settings=settings), None


def ordered_queue(session: Session, user: User, *, backend: ExecutionBackend, clock: Clock,
                  settings: Settings, project: str | int | None = None,
                  board: QueueOrderBoard | None = None) -> OrderedQueue:
    """The pending jobs ``user`` may see (of ``project``), in the core's order."""
    view, as_of = queue_view(session, backend=backend, clock=clock, settings=settings,
                             board=board)
    visible = {str(j.id): j for j in service.queue(session, user, project=project)}
    entries = [QueueEntry(visible.pop(q.job_id), q.position, q.priority)
               for q in view.jobs if q.job_id in visible]
    entries += [QueueEntry(j, None, None) for j in visible.values()]
    return OrderedQueue(policy=view.policy, order=view.order, length=len(view.jobs),
                        entries=entries, as_of=as_of)


@dataclass(frozen=True, slots=True)
class QueueSlot:
    """One waiting job in a queue page: its place, without the job row (loaded for the
    rows shown only)."""

    job_id: int
    name: str
    project_id: int
    user_id: int
    position: int | None
    priority: PriorityFactors | None


@dataclass(frozen=True, slots=True)
class QueueSlots:
    policy: str
    order: str
    length: int
    slots: list[QueueSlot]
    as_of: datetime | None


def queue_slots(session: Session, user: User, *, backend: ExecutionBackend, clock: Clock,
                settings: Settings, project: str | int | None = None,
                board: QueueOrderBoard | None = None) -> QueueSlots:
    """Like :func:`ordered_queue`, with the job's id, name, project and user only (one
    narrow query), so a page loads the full rows of the jobs it shows only."""
    view, as_of = queue_view(session, backend=backend, clock=clock, settings=settings,
                             board=board)
    visible = {str(r.id): r for r in service.pending_summaries(session, user,
                                                               project=project)}
    slots = []
    for q in view.jobs:
        r = visible.pop(q.job_id, None)
        if r is not None:
            slots.append(QueueSlot(r.id, r.name, r.project_id, r.user_id, q.position,
                                   q.priority))
    # joined since the order was taken, or held back (dependencies, an array's %N)
    slots += [QueueSlot(r.id, r.name, r.project_id, r.user_id, None, None)
              for r in sorted(visible.values(), key=lambda r: r.id)]
    return QueueSlots(policy=view.policy, order=view.order, length=len(view.jobs),
                      slots=slots, as_of=as_of)


def job_priority(session: Session, user: User, job_id: int, *, backend: ExecutionBackend,
                 clock: Clock, settings: Settings, board: QueueOrderBoard | None = None,
                 ) -> tuple[Job, OrderedQueue]:
    """One pending job's place and priority (404 for a job the user cannot see): in the
    last cycle's order when that holds the job, else in the order computed now."""
    job = service.get_job(session, user, job_id)
    if job.state != JobState.PENDING.value:
        raise InvalidTransition(
            f"job {job.id} is {job.state}, not waiting in the queue", field="job",
            hint="Only pending jobs have a queue position; `rechenwerk job show` tells "
                 "where the job is.")
    published = board.fresh(session, clock.now()) if board is not None else None
    if published is not None and str(job.id) in published.ids:
        view, as_of = published.view, published.at
    else:  # no fresh order, or the job joined the queue after it: compute the order
        view = core_view(session, backend=backend, clock=clock, settings=settings)
        as_of = None
    mine = [QueueEntry(job, q.position, q.priority) for q in view.jobs
            if q.job_id == str(job.id)]
    return job, OrderedQueue(policy=view.policy, order=view.order, length=len(view.jobs),
                             entries=mine or [QueueEntry(job, None, None)], as_of=as_of)
