"""The pending queue as the core orders it, with each job's priority term by term.

What ``squeue --sort`` and ``sprio`` answer in Slurm: the API, the CLI and the portal show
the queue in this order (not by QOS and submit time) and explain each job's place.
Pure, like the rest of the core: a snapshot (or a scheduler) in, a view out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rechenwerk.scheduling.incremental import build_scheduler
from rechenwerk.scheduling.model import PendingJob, QueuedJob, QueueView, Snapshot

if TYPE_CHECKING:
    from rechenwerk.scheduling.cycle import Scheduler
    from rechenwerk.scheduling.policies import Policy


def _view(policy: str, sched: Scheduler, ordered: Iterable[PendingJob],
          now: float) -> QueueView:
    jobs = tuple(
        QueuedJob(job_id=job.job_id, position=i,
                  priority=sched.priority_factors(job, now))
        for i, job in enumerate(ordered, start=1)
    )
    return QueueView(policy=policy, order=sched.order_rule, jobs=jobs)


def explain_queue(policy: Policy, snap: Snapshot) -> QueueView:
    """Every pending job of ``snap`` in the order the policy's next main pass considers
    them, as a scheduler rebuilt from the snapshot would (the live loop's own scheduler
    recalculates multifactor priorities every ``priority_calc_period_s``)."""
    sched = build_scheduler(policy, snap)
    return _view(policy.name, sched, sched.queue_order(snap.now), snap.now)


def held_queue(policy: str, sched: Scheduler, now: float) -> QueueView:
    """The pending jobs a live scheduler holds, in the order its last pass used (no
    priority recalculation: reading the order does not change the scheduler)."""
    return _view(policy, sched, sched.current_order(now), now)
