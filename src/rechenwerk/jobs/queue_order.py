"""The queue as the scheduling core orders it, each job with its priority term by term.

``squeue`` and ``sprio`` for Rechenwerk: the API, the CLI and the portal list waiting jobs
in the order the configured policy's next main pass considers them (computed by the core
from a fresh snapshot: ``scheduling.queue_view``), not by QOS and submit time. Positions
count every pending job of the centre, so a user sees how many jobs are ahead of theirs
without seeing whose they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from rechenwerk.access.models import User
from rechenwerk.clock import Clock
from rechenwerk.config import Settings
from rechenwerk.errors import InvalidTransition
from rechenwerk.execution.base import ExecutionBackend
from rechenwerk.jobs import service
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.policy_config import configured_policy
from rechenwerk.jobs.snapshot import SnapshotBuilder
from rechenwerk.jobs.states import JobState
from rechenwerk.scheduling.arrays import hold_array_excess
from rechenwerk.scheduling.model import PriorityFactors, QueueView
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


def core_view(session: Session, *, backend: ExecutionBackend, clock: Clock,
              settings: Settings) -> QueueView:
    policy = configured_policy(settings)
    builder = SnapshotBuilder(backend, clock, policy.params.fairshare_half_life_s)
    snap, _ = builder.build(session)
    snap, _held = hold_array_excess(snap)  # tasks beyond their array's %N: not queued yet
    return explain_queue(policy, snap)


def ordered_queue(session: Session, user: User, *, backend: ExecutionBackend, clock: Clock,
                  settings: Settings, project: str | int | None = None) -> OrderedQueue:
    """The pending jobs ``user`` may see (of ``project``), in the core's order."""
    view = core_view(session, backend=backend, clock=clock, settings=settings)
    visible = {str(j.id): j for j in service.queue(session, user, project=project)}
    entries = [QueueEntry(visible.pop(q.job_id), q.position, q.priority)
               for q in view.jobs if q.job_id in visible]
    entries += [QueueEntry(j, None, None) for j in visible.values()]
    return OrderedQueue(policy=view.policy, order=view.order, length=len(view.jobs),
                        entries=entries)


def job_priority(session: Session, user: User, job_id: int, *, backend: ExecutionBackend,
                 clock: Clock, settings: Settings) -> tuple[Job, OrderedQueue]:
    """One pending job's place and priority (404 for a job the user cannot see)."""
    job = service.get_job(session, user, job_id)
    if job.state != JobState.PENDING.value:
        raise InvalidTransition(
            f"job {job.id} is {job.state}, not waiting in the queue", field="job",
            hint="Only pending jobs have a queue position; `rechenwerk job show` tells "
                 "where the job is.")
    view = core_view(session, backend=backend, clock=clock, settings=settings)
    mine = [QueueEntry(job, q.position, q.priority) for q in view.jobs
            if q.job_id == str(job.id)]
    return job, OrderedQueue(policy=view.policy, order=view.order, length=len(view.jobs),
                             entries=mine or [QueueEntry(job, None, None)])
